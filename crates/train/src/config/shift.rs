//! `formulation.shift`: a timestep shift factor alpha, or `"auto"`, which derives alpha from the
//! run's resolution against `formulation.shift_base_resolution` (SD3 Eq. 23, alpha = sqrt(m/n)).
//!
//! m and n are pixel counts: `data.resolution` is the image side in pixels for pixel and latent
//! runs alike, and a latent run's token count is `(side / (f p))^2` for the autoencoder's
//! downsampling f and the patch size p, so the ratio of token counts equals the ratio of pixel
//! counts whenever both resolutions go through the same autoencoder and patch size.

use flowscale_formulations::Shift;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// The base resolution of `"auto"` without `formulation.shift_base_resolution`: the paper's
/// 256^2 pre-training resolution.
pub const DEFAULT_SHIFT_BASE_RESOLUTION: u32 = 256;

/// What `formulation.shift` holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ShiftSetting {
    /// A fixed alpha (1 = no shift).
    Alpha(f64),
    /// alpha = sqrt(resolution^2 / base^2) = resolution / base.
    Auto,
}

impl ShiftSetting {
    /// The factor alpha for a run of `resolution` pixels a side against a base of `base` pixels
    /// a side (both > 0 after validation).
    pub fn alpha(self, resolution: u32, base: u32) -> flowscale_formulations::Result<f64> {
        match self {
            Self::Alpha(a) => Shift::new(a).map(Shift::alpha),
            Self::Auto => {
                let (m, n) = (f64::from(resolution), f64::from(base));
                Shift::for_resolution(m * m, n * n).map(Shift::alpha)
            }
        }
    }
}

impl Serialize for ShiftSetting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            // A number as before the key took "auto": existing resolved configs (and their
            // config hashes and run IDs) serialise unchanged.
            Self::Alpha(a) => s.serialize_f64(*a),
            Self::Auto => s.serialize_str("auto"),
        }
    }
}

struct ShiftVisitor;

impl Visitor<'_> for ShiftVisitor {
    type Value = ShiftSetting;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a positive number or \"auto\"")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ShiftSetting, E> {
        Ok(ShiftSetting::Alpha(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ShiftSetting, E> {
        Ok(ShiftSetting::Alpha(v as f64))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ShiftSetting, E> {
        Ok(ShiftSetting::Alpha(v as f64))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ShiftSetting, E> {
        if v == "auto" {
            return Ok(ShiftSetting::Auto);
        }
        Err(E::custom(format!(
            "expected a positive number or \"auto\" (lower case), got {v:?}"
        )))
    }
}

impl<'de> Deserialize<'de> for ShiftSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShiftVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(resolution: u32, base: u32) -> f64 {
        ShiftSetting::Auto.alpha(resolution, base).unwrap()
    }

    #[test]
    fn auto_is_the_square_root_of_the_pixel_ratio() {
        assert_eq!(auto(1024, 512), 2.0);
        assert_eq!(auto(1024, 256), 4.0);
        assert_eq!(auto(256, 256), 1.0);
        assert_eq!(auto(32, 64), 0.5);
    }

    #[test]
    fn a_number_is_its_own_alpha_and_a_bad_one_is_refused() {
        assert_eq!(ShiftSetting::Alpha(3.0).alpha(1024, 256).unwrap(), 3.0);
        for bad in [0.0, -1.0, f64::NAN] {
            assert!(ShiftSetting::Alpha(bad).alpha(32, 32).is_err(), "{bad}");
        }
        assert!(ShiftSetting::Auto.alpha(32, 0).is_err());
    }

    #[derive(Debug, Deserialize, Serialize)]
    struct T {
        shift: ShiftSetting,
    }

    #[test]
    fn reads_numbers_and_auto_and_names_other_text() {
        let t: T = toml::from_str("shift = 3").unwrap();
        assert_eq!(t.shift, ShiftSetting::Alpha(3.0));
        let t: T = toml::from_str("shift = 1.5").unwrap();
        assert_eq!(t.shift, ShiftSetting::Alpha(1.5));
        let t: T = toml::from_str("shift = \"auto\"").unwrap();
        assert_eq!(t.shift, ShiftSetting::Auto);
        let e = toml::from_str::<T>("shift = \"Auto\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"Auto\"") && e.contains("\"auto\""), "{e}");
        let e = toml::from_str::<T>("shift = true").unwrap_err().to_string();
        assert!(e.contains("positive number or \"auto\""), "{e}");
    }

    #[test]
    fn writes_a_number_as_a_float_and_auto_as_text() {
        let text = |s| toml::to_string(&T { shift: s }).unwrap();
        assert_eq!(text(ShiftSetting::Alpha(1.0)), "shift = 1.0\n");
        assert_eq!(text(ShiftSetting::Auto), "shift = \"auto\"\n");
    }
}
