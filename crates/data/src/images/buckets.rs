//! Aspect-ratio buckets (SD3 Sec. 5.3.2, mixed-aspect finetuning): a set of output sizes of about
//! equal pixel count, and the rule that sends each image to one of them. An image goes to the
//! bucket whose aspect ratio is nearest in log aspect ratio, `|ln(w/h) - ln(W/H)|`, so a 2:1 and a
//! 1:2 image are equally far from a square bucket; on a tie the bucket listed first wins. The
//! image is then resized to cover the bucket and centre-cropped to it (`preprocess`).

/// An output size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketSize {
    pub width: usize,
    pub height: usize,
}

impl BucketSize {
    fn log_aspect(self) -> f64 {
        (self.width as f64 / self.height as f64).ln()
    }
}

/// The configured buckets, in their listed order (a bucket's index is its place in the list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AspectBuckets {
    sizes: Vec<BucketSize>,
}

impl AspectBuckets {
    /// The buckets `sizes`, each side positive, no size twice.
    pub fn new(sizes: Vec<BucketSize>) -> Result<Self, String> {
        if sizes.is_empty() {
            return Err("no bucket sizes".into());
        }
        for (i, s) in sizes.iter().enumerate() {
            if s.width == 0 || s.height == 0 {
                return Err(format!("bucket {}x{} has an empty side", s.width, s.height));
            }
            if sizes[..i].contains(s) {
                return Err(format!("bucket {}x{} is listed twice", s.width, s.height));
            }
        }
        Ok(Self { sizes })
    }

    /// The equal-area family around a `base x base` square, the SD3/SDXL bucket scheme scaled to
    /// `base`: for every long side `L = base + k step` (k = 0, 1, ...) the short side
    /// `step * round(base^2 / (L step))`, so that the area is about `base^2`, in both
    /// orientations, as long as the aspect ratio stays within `max_aspect`. Both sides are
    /// multiples of `step` (the autoencoder factor times the patch size: 16 for SD3). Ordered
    /// from the tallest to the widest; the square is the middle one.
    pub fn equal_area(base: usize, step: usize, max_aspect: f64) -> Result<Self, String> {
        if base == 0 || step == 0 || !base.is_multiple_of(step) {
            return Err(format!(
                "the base side {base} must be a positive multiple of the step {step}"
            ));
        }
        if !(max_aspect.is_finite() && max_aspect >= 1.0) {
            return Err(format!("max_aspect {max_aspect} must be >= 1"));
        }
        let area = (base * base) as f64;
        let limit = max_aspect.ln() + 1e-9;
        let mut sizes = Vec::new();
        let mut long = base;
        // A long side beyond base * max_aspect cannot have an allowed short side.
        while long as f64 <= base as f64 * max_aspect {
            let short = ((area / (long * step) as f64).round() as usize) * step;
            for size in [
                BucketSize {
                    width: short,
                    height: long,
                },
                BucketSize {
                    width: long,
                    height: short,
                },
            ] {
                if short > 0 && size.log_aspect().abs() <= limit && !sizes.contains(&size) {
                    sizes.push(size);
                }
            }
            long += step;
        }
        sizes.sort_by(|a, b| a.log_aspect().total_cmp(&b.log_aspect()));
        Self::new(sizes)
    }

    pub fn sizes(&self) -> &[BucketSize] {
        &self.sizes
    }

    /// The index of the bucket nearest to a `width x height` image in log aspect ratio; the
    /// first listed on a tie.
    pub fn nearest(&self, width: usize, height: usize) -> usize {
        let a = (width as f64 / height as f64).ln();
        let mut best = 0;
        let mut best_d = f64::INFINITY;
        for (i, s) in self.sizes.iter().enumerate() {
            let d = (a - s.log_aspect()).abs();
            // Strictly nearer: a tie keeps the earlier bucket.
            if d < best_d {
                best = i;
                best_d = d;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(width: usize, height: usize) -> BucketSize {
        BucketSize { width, height }
    }

    #[test]
    fn the_family_at_1024_has_equal_area_sides_of_the_step_and_the_square() {
        let b = AspectBuckets::equal_area(1024, 64, 4.0).unwrap();
        let s = b.sizes();
        assert!(s.contains(&size(1024, 1024)));
        assert!(s.contains(&size(1216, 832)) && s.contains(&size(832, 1216)));
        assert_eq!(s[0], size(512, 2048), "tallest first");
        assert_eq!(*s.last().unwrap(), size(2048, 512), "widest last");
        for x in s {
            assert_eq!((x.width % 64, x.height % 64), (0, 0));
            let rel = (x.width * x.height) as f64 / (1024.0 * 1024.0);
            assert!((0.9..1.1).contains(&rel), "{x:?} area {rel}");
        }
        // Tall to wide, strictly, and symmetric.
        assert!(s.windows(2).all(|p| p[0].log_aspect() < p[1].log_aspect()));
        let n = s.len();
        for (i, x) in s.iter().enumerate() {
            assert_eq!(size(x.height, x.width), s[n - 1 - i]);
        }
        // Small: base 64, step 16, aspect <= 2.5.
        let small = AspectBuckets::equal_area(64, 16, 2.5).unwrap();
        let got: Vec<(usize, usize)> = small.sizes().iter().map(|s| (s.width, s.height)).collect();
        assert_eq!(got, [(48, 96), (48, 80), (64, 64), (80, 48), (96, 48)]);
    }

    #[test]
    fn nearest_is_in_log_aspect_and_a_tie_keeps_the_first() {
        let b = AspectBuckets::new(vec![size(32, 32), size(48, 16), size(16, 48)]).unwrap();
        assert_eq!(b.nearest(100, 100), 0);
        assert_eq!(b.nearest(300, 100), 1);
        assert_eq!(b.nearest(100, 300), 2);
        // 1.5:1 is ln 1.5 = 0.405 from the square and ln 2 = 0.693 from 3:1.
        assert_eq!(b.nearest(150, 100), 0);
        // 2:1 lies exactly halfway in log aspect between 4:1 and 1:1 (ln 4 = 2 ln 2 holds in
        // floating point too); the bucket listed first wins either way round.
        let wide_first = AspectBuckets::new(vec![size(64, 16), size(32, 32)]).unwrap();
        assert_eq!(wide_first.nearest(200, 100), 0);
        let square_first = AspectBuckets::new(vec![size(32, 32), size(64, 16)]).unwrap();
        assert_eq!(square_first.nearest(200, 100), 0);
        assert_eq!(square_first.nearest(201, 100), 1);
    }

    #[test]
    fn bad_sets_are_refused() {
        assert!(AspectBuckets::new(vec![]).is_err());
        assert!(AspectBuckets::new(vec![size(0, 4)]).is_err());
        assert!(AspectBuckets::new(vec![size(4, 4), size(4, 4)]).is_err());
        assert!(AspectBuckets::equal_area(100, 16, 2.0).is_err());
        assert!(AspectBuckets::equal_area(64, 16, 0.5).is_err());
    }
}
