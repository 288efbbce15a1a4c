//! Separable, antialiased resampling in `f32`, with PIL's conventions (`Image.resize` with
//! `BICUBIC` or `LANCZOS`): pixel centres at `i + 0.5`, and on downscale the filter is stretched
//! by the scale factor so every input pixel contributes (antialiasing). Like PIL the intermediate
//! (horizontally resampled) image is clamped to 0..255; unlike PIL's 8-bit path it is not rounded.
//!
//! Only the output pixels of a crop window are computed: resize-then-crop without the waste.

use super::decode::RgbImage;
use std::ops::Range;

/// The interpolation kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Keys' cubic with a = -0.5 (PIL's `BICUBIC`), support 2.
    #[default]
    Bicubic,
    /// Windowed sinc with 3 lobes (PIL's `LANCZOS`), support 3.
    Lanczos3,
}

impl Filter {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name.to_ascii_lowercase().as_str() {
            "bicubic" => Ok(Self::Bicubic),
            "lanczos" | "lanczos3" => Ok(Self::Lanczos3),
            other => Err(format!(
                "unknown resampling filter {other:?} (bicubic, lanczos)"
            )),
        }
    }

    fn support(self) -> f64 {
        match self {
            Self::Bicubic => 2.0,
            Self::Lanczos3 => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Self::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Self::Lanczos3 => {
                if x < 3.0 {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// For each output index of a window, the first input index and the normalised weights of the
/// input samples it reads (`width` slots each, zero-padded).
#[derive(Debug)]
pub(crate) struct Taps {
    pub first: Vec<usize>,
    pub count: Vec<usize>,
    pub width: usize,
    pub weights: Vec<f32>,
}

impl Taps {
    /// Resampling `input` samples to `output`, for the output indices in `window`.
    pub fn new(input: usize, output: usize, window: Range<usize>, filter: Filter) -> Self {
        if input == output {
            // Identity: the kernel is 1 at 0 and 0 at every other integer.
            return Self {
                first: window.clone().collect(),
                count: vec![1; window.len()],
                width: 1,
                weights: vec![1.0; window.len()],
            };
        }
        let scale = input as f64 / output as f64;
        let stretch = scale.max(1.0);
        let support = filter.support() * stretch;
        let width = (support * 2.0).ceil() as usize + 1;
        let mut taps = Self {
            first: Vec::with_capacity(window.len()),
            count: Vec::with_capacity(window.len()),
            width,
            weights: vec![0.0; window.len() * width],
        };
        let mut raw = vec![0f64; width];
        for (slot, i) in window.enumerate() {
            let center = (i as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
            let hi = ((center + support + 0.5).floor() as usize).min(input);
            let n = hi.saturating_sub(lo).min(width);
            let mut sum = 0.0;
            for (k, w) in raw[..n].iter_mut().enumerate() {
                *w = filter.weight(((lo + k) as f64 - center + 0.5) / stretch);
                sum += *w;
            }
            let row = &mut taps.weights[slot * width..slot * width + n];
            for (out, &w) in row.iter_mut().zip(&raw[..n]) {
                *out = if sum != 0.0 { (w / sum) as f32 } else { 0.0 };
            }
            taps.first.push(lo);
            taps.count.push(n);
        }
        taps
    }

    fn of(&self, slot: usize) -> (usize, &[f32]) {
        let w = &self.weights[slot * self.width..slot * self.width + self.count[slot]];
        (self.first[slot], w)
    }

    /// The input indices any output of the window reads.
    fn input_span(&self) -> Range<usize> {
        let lo = self.first.iter().copied().min().unwrap_or(0);
        let hi = (0..self.first.len())
            .map(|s| self.first[s] + self.count[s])
            .max()
            .unwrap_or(0);
        lo..hi
    }
}

/// Resizes `image` to `resized_w x resized_h` and returns the `cols x rows` window of the result,
/// planar `[3][rows.len()][cols.len()]`, in the 0..255 scale of the input (bicubic and Lanczos
/// overshoot slightly past both ends; the caller clamps).
pub fn resize_window(
    image: &RgbImage,
    resized_w: usize,
    resized_h: usize,
    cols: Range<usize>,
    rows: Range<usize>,
    filter: Filter,
) -> Vec<f32> {
    let (out_w, out_h) = (cols.len(), rows.len());
    let h_taps = Taps::new(image.width, resized_w, cols, filter);
    let v_taps = Taps::new(image.height, resized_h, rows, filter);
    let span = v_taps.input_span();

    // Horizontal pass over the input rows the vertical pass reads: [span][out_w][3].
    let stride = out_w * 3;
    let mut horizontal = vec![0f32; span.len() * stride];
    for (r, y) in span.clone().enumerate() {
        let src = &image.data[y * image.width * 3..(y + 1) * image.width * 3];
        let dst = &mut horizontal[r * stride..(r + 1) * stride];
        for (x, out) in dst.chunks_exact_mut(3).enumerate() {
            let (first, weights) = h_taps.of(x);
            let (mut r_, mut g, mut b) = (0f32, 0f32, 0f32);
            for (k, &w) in weights.iter().enumerate() {
                let p = &src[(first + k) * 3..(first + k) * 3 + 3];
                r_ += w * f32::from(p[0]);
                g += w * f32::from(p[1]);
                b += w * f32::from(p[2]);
            }
            // Clamped like PIL's intermediate image: the overshoot of a hard edge must not be
            // amplified again by the vertical kernel.
            out[0] = r_.clamp(0.0, 255.0);
            out[1] = g.clamp(0.0, 255.0);
            out[2] = b.clamp(0.0, 255.0);
        }
    }

    // Vertical pass, one output row at a time (a weighted sum of whole rows vectorises), then
    // de-interleaved into planes.
    let plane = out_w * out_h;
    let mut out = vec![0f32; 3 * plane];
    let mut acc = vec![0f32; stride];
    for y in 0..out_h {
        let (first, weights) = v_taps.of(y);
        acc.fill(0.0);
        for (k, &w) in weights.iter().enumerate() {
            let r = first + k - span.start;
            let src = &horizontal[r * stride..(r + 1) * stride];
            for (a, &s) in acc.iter_mut().zip(src) {
                *a += w * s;
            }
        }
        for (x, px) in acc.chunks_exact(3).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                out[c * plane + y * out_w + x] = v;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_downscale_widens_the_kernel() {
        for filter in [Filter::Bicubic, Filter::Lanczos3] {
            let up = Taps::new(10, 25, 0..25, filter);
            let down = Taps::new(100, 25, 0..25, filter);
            for t in [&up, &down] {
                for s in 0..25 {
                    let sum: f32 = t.of(s).1.iter().sum();
                    assert!((sum - 1.0).abs() < 1e-5, "{filter:?} slot {s}: {sum}");
                }
            }
            // Downscale by 4: the kernel spans 4x the input pixels.
            let inner = down.count[12];
            assert!(
                inner >= (filter.support() * 2.0 * 4.0) as usize,
                "{filter:?}: {inner}"
            );
        }
    }

    #[test]
    fn a_constant_image_stays_constant() {
        let img = RgbImage::new(37, 23, [10u8, 200, 77].repeat(37 * 23)).unwrap();
        let out = resize_window(&img, 16, 10, 3..13, 0..10, Filter::Lanczos3);
        assert_eq!(out.len(), 3 * 10 * 10);
        for (c, v) in [10.0f32, 200.0, 77.0].iter().enumerate() {
            for &o in &out[c * 100..(c + 1) * 100] {
                assert!((o - v).abs() < 1e-3, "{o} vs {v}");
            }
        }
    }
}
