//! CLIP as a metric network: CLIP score of samples against captions, and CLIP image embeddings
//! as FID features. Loads a Hugging Face `CLIPModel` folder (vision + text + `logit_scale`) and
//! CLIP's BPE merges (the gzip file `scripts/setup` fetches; the same vocabulary as OpenAI
//! CLIP's Hugging Face tokenizer).
//!
//! Images: the sampler's u8 pixels (grey replicated to RGB) through CLIP's preprocessing
//! ([`flowscale_encoders::clip::preprocess`]: PIL-style bicubic resize of the shorter side to
//! the model's `image_size`, centre crop, CLIP mean and std). Texts: start token, BPE, end
//! token, zero padding to `max_position_embeddings` (attention is causal and pooling happens at
//! the end token, so the padding does not change the embedding).

use crate::error::{EvalError, Result};
use crate::feature_net::FeatureNet;
use crate::hash::{sha256_bytes, sha256_file};
use flowscale_encoders::clip::{score, ClipModel, ClipPreprocess, ClipScore};
use flowscale_encoders::text::{ClipPadding, ClipTokenizer, Frozen};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// The loaded CLIP model, its tokenizer and the hash of its folder.
#[derive(Debug)]
pub struct ClipMetric {
    clip: Frozen<ClipModel>,
    tokenizer: ClipTokenizer,
    preprocess: ClipPreprocess,
    device: Device,
    pub dir: PathBuf,
    /// SHA-256 over the folder's file names and contents.
    pub sha256: String,
}

impl ClipMetric {
    /// Loads the `CLIPModel` folder `dir` (fp32 on `device`) and the BPE merges `tokenizer`;
    /// the tokenizer's vocabulary must be the model's.
    pub fn load(dir: &Path, tokenizer_path: &Path, device: Device) -> Result<Self> {
        if !dir.is_dir() {
            return Err(EvalError::Invalid(format!(
                "{}: CLIP model folder not found (clip.model names a Hugging Face CLIPModel folder)",
                dir.display()
            )));
        }
        let clip = ClipModel::load(dir, Kind::Float, device)?;
        let text = clip.model.config().text();
        let tokenizer = ClipTokenizer::from_file(
            tokenizer_path,
            text.max_position_embeddings as usize,
            ClipPadding::Zero,
        )?;
        if tokenizer.bpe.vocab_size() as i64 != text.vocab_size {
            return Err(EvalError::Invalid(format!(
                "{}: the tokenizer has {} tokens but {} has vocab_size {}",
                tokenizer_path.display(),
                tokenizer.bpe.vocab_size(),
                dir.join("config.json").display(),
                text.vocab_size
            )));
        }
        let preprocess = ClipPreprocess::for_size(clip.model.config().vision_config.image_size);
        Ok(ClipMetric {
            clip,
            tokenizer,
            preprocess,
            device,
            dir: dir.to_path_buf(),
            sha256: folder_sha256(dir)?,
        })
    }

    /// Image embeddings `[N, P]` (float32, CPU, not normalised) of u8 images `[N, C, H, W]`.
    pub fn image_embeds(&self, images: &Tensor, batch_size: usize) -> Result<Tensor> {
        let size = images.size();
        if size.len() != 4 || !(size[1] == 1 || size[1] == 3) {
            return Err(EvalError::shape(
                "CLIP images",
                "u8 [N, 1 or 3, H, W]",
                &size,
            ));
        }
        let _guard = tch::no_grad_guard();
        let mut out = Vec::new();
        let mut start = 0;
        while start < size[0] {
            let len = (batch_size.max(1) as i64).min(size[0] - start);
            let x = images.f_narrow(0, start, len)?;
            let x = if size[1] == 1 {
                x.f_expand([-1, 3, -1, -1], false)?
            } else {
                x
            };
            let pixels = self.preprocess.apply(&x.f_to_device(self.device)?)?;
            let e = self.clip.model.image_embeds(&pixels)?;
            out.push(e.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?);
            start += len;
        }
        Ok(Tensor::f_cat(&out, 0)?)
    }

    /// Token ids `[N, L]` of captions.
    pub fn tokenize(&self, captions: &[&str]) -> Result<Tensor> {
        Ok(self.tokenizer.encode_batch(captions).ids)
    }

    /// Text embeddings `[N, P]` (float32, CPU, not normalised) of token ids `[N, L]`.
    pub fn text_embeds_ids(&self, ids: &Tensor) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        let e = self
            .clip
            .model
            .text_embeds(&ids.f_to_device(self.device)?)?;
        Ok(e.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?)
    }

    /// Text embeddings `[N, P]` of captions.
    pub fn text_embeds(&self, captions: &[&str]) -> Result<Tensor> {
        self.text_embeds_ids(&self.tokenize(captions)?)
    }

    /// The mean CLIP score (raw cosine and torchmetrics' x100 scale) of u8 images
    /// `[N, C, H, W]` against their captions (one per image).
    pub fn score(
        &self,
        images: &Tensor,
        captions: &[&str],
        batch_size: usize,
    ) -> Result<ClipScore> {
        if images.size().first().copied() != Some(captions.len() as i64) {
            return Err(EvalError::Invalid(format!(
                "CLIP score: {} captions for images {:?}",
                captions.len(),
                images.size()
            )));
        }
        let img = self.image_embeds(images, batch_size)?;
        let txt = self.text_embeds(captions)?;
        Ok(ClipScore::from_cosines(&score::cosines(&img, &txt)?)?)
    }

    /// The directory name, used in the feature network's name.
    fn short_name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

impl FeatureNet for ClipMetric {
    /// `clip-image-embeds:<folder name>`: the projected image embeddings (`image_embeds`).
    fn name(&self) -> String {
        format!("clip-image-embeds:{}", self.short_name())
    }
    fn weights_sha256(&self) -> String {
        self.sha256.clone()
    }
    fn resize_mode(&self) -> String {
        format!(
            "clip-pil-bicubic{}-centercrop{}-clip-mean-std",
            self.preprocess.shortest_edge, self.preprocess.crop
        )
    }
    fn features_u8(&self, images: &Tensor, batch_size: usize) -> Result<Tensor> {
        self.image_embeds(images, batch_size)
    }
}

/// SHA-256 over the sorted names and contents of the regular files of `dir` (weights, config,
/// tokenizer files).
pub fn folder_sha256(dir: &Path) -> Result<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| EvalError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut all = Vec::new();
    for f in files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        all.extend_from_slice(name.unwrap_or_default().as_bytes());
        all.push(0);
        all.extend_from_slice(sha256_file(&f)?.as_bytes());
    }
    Ok(sha256_bytes(&all))
}
