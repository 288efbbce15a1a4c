//! Images to model inputs: decode (JPEG/PNG/WebP), resize the short side and centre-crop
//! (the SD3 paper's protocol), map to [-1, 1], optionally flip; in parallel over a batch.

pub mod batch;
pub mod buckets;
pub mod decode;
pub mod preprocess;
pub mod resample;

pub use batch::{preprocess_batch, stack_images, PreparedSample};
pub use buckets::{AspectBuckets, BucketSize};
pub use decode::{decode_rgb, RgbImage};
pub use preprocess::{
    cover_crop_geometry, crop_geometry, preprocess_bytes, preprocess_rgb, CropGeometry,
    PreprocessConfig, Preprocessed,
};
pub use resample::{resize_window, Filter};
