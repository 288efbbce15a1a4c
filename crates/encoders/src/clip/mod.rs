//! CLIP as a metric network (issue #7): the vision tower, the `CLIPModel` pairing it with the
//! text tower of [`crate::text::clip`], image preprocessing and the CLIP score.

pub mod config;
pub(crate) mod defaults;
pub(crate) mod layer;
pub mod model;
pub mod preprocess;
pub mod score;
pub mod vision;
pub mod vision_config;

pub use config::ClipModelConfig;
pub use model::ClipModel;
pub use preprocess::{ClipPreprocess, CLIP_MEAN, CLIP_STD};
pub use score::ClipScore;
pub use vision::{ClipVision, ClipVisionOutput};
pub use vision_config::ClipVisionConfig;
