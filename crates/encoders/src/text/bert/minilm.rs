//! A sentence-transformers BERT model in a folder (all-MiniLM-L6-v2): `config.json`,
//! `model.safetensors`, `tokenizer.json`, `sentence_bert_config.json` (`max_seq_length`) and
//! `1_Pooling/config.json` (mean pooling). Sentence embedding = mean of the token states over the
//! attention mask, L2-normalised, as sentence-transformers' `Pooling` + `Normalize` modules do.

use super::config::BertConfig;
use super::model::{Bert, IGNORED_KEYS};
use crate::error::{EncoderError, Result};
use crate::text::hf_tokenizer::{pad_batch, HfTokenizer, Padding, TokenBatch};
use crate::weights;
use serde::Deserialize;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

#[derive(Debug, Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

#[derive(Debug, Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

/// Token states and sentence embeddings of a batch.
#[derive(Debug)]
pub struct SentenceEmbeddings {
    /// Last hidden states `[B, L, H]` (padding positions included, as the model computes them).
    pub tokens: Tensor,
    /// `[B, L]` i64, 1 for tokens.
    pub mask: Tensor,
    /// Mean-pooled, L2-normalised `[B, H]`.
    pub embedding: Tensor,
}

/// all-MiniLM-L6-v2 (or any mean-pooling BERT sentence-transformers folder).
#[derive(Debug)]
pub struct MiniLm {
    pub vs: nn::VarStore,
    pub model: Bert,
    pub config: BertConfig,
    pub tokenizer: HfTokenizer,
    pub max_seq_length: usize,
}

pub const POOLING_CONFIG: &str = "1_Pooling/config.json";
pub const SENTENCE_CONFIG: &str = "sentence_bert_config.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| EncoderError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| EncoderError::format(path, e.to_string()))
}

impl MiniLm {
    /// Loads the folder in fp32 on `device`.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let config_path = dir.join(weights::CONFIG_FILE);
        let config: BertConfig = weights::read_config(dir)?;
        let sentence: SentenceBertConfig = read_json(&dir.join(SENTENCE_CONFIG))?;
        let pooling_path = dir.join(POOLING_CONFIG);
        let pooling: PoolingConfig = read_json(&pooling_path)?;
        if !pooling.pooling_mode_mean_tokens
            || pooling.pooling_mode_cls_token
            || pooling.pooling_mode_max_tokens
            || pooling.pooling_mode_mean_sqrt_len_tokens
        {
            return Err(EncoderError::format(
                &pooling_path,
                "only mean pooling (pooling_mode_mean_tokens alone) is supported",
            ));
        }
        let max_seq_length = sentence
            .max_seq_length
            .min(config.max_position_embeddings as usize);
        let tokenizer = HfTokenizer::from_file(&dir.join(TOKENIZER_FILE), max_seq_length)?;
        let mut vs = nn::VarStore::new(device);
        let model = Bert::new(&vs.root(), &config, &config_path)?;
        vs.freeze();
        let state = weights::read_folder(dir, Kind::Float, device)?;
        weights::copy_into(&vs, &state, IGNORED_KEYS, dir)?;
        Ok(MiniLm {
            vs,
            model,
            config,
            tokenizer,
            max_seq_length,
        })
    }

    pub fn width(&self) -> i64 {
        self.config.hidden_size
    }

    /// Tokenises `texts` (padded to the longest) on the model's device.
    pub fn tokenize(&self, texts: &[&str], padding: Padding) -> Result<TokenBatch> {
        self.tokenizer
            .encode_batch(texts, padding)?
            .to_device(self.vs.device())
    }

    /// Encodes a token batch.
    pub fn encode_tokens(&self, batch: &TokenBatch) -> Result<SentenceEmbeddings> {
        tch::no_grad(|| {
            let tokens = self.model.forward(&batch.ids, &batch.mask)?;
            let embedding = mean_pool_normalize(&tokens, &batch.mask)?;
            Ok(SentenceEmbeddings {
                tokens,
                mask: batch.mask.shallow_clone(),
                embedding,
            })
        })
    }

    /// Encodes texts, padded to the longest of the batch.
    pub fn encode(&self, texts: &[&str]) -> Result<SentenceEmbeddings> {
        self.encode_tokens(&self.tokenize(texts, Padding::Longest)?)
    }

    /// Sentence embeddings `[N, H]` of many texts: tokenised once, grouped into batches of
    /// `batch_size` by token count (longest first, as sentence-transformers groups by length) so
    /// little padding is computed, and returned in input order.
    pub fn embed_sorted(&self, texts: &[&str], batch_size: usize) -> Result<Tensor> {
        if texts.is_empty() {
            return Err(EncoderError::Input("no texts to embed".into()));
        }
        let seqs = texts
            .iter()
            .map(|t| self.tokenizer.encode(t))
            .collect::<Result<Vec<_>>>()?;
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(seqs[i].len()));
        let mut out = Vec::with_capacity(order.len().div_ceil(batch_size.max(1)));
        for chunk in order.chunks(batch_size.max(1)) {
            let batch: Vec<Vec<i64>> = chunk.iter().map(|&i| seqs[i].clone()).collect();
            let tokens = pad_batch(&batch, Padding::Longest, self.tokenizer.pad_id())
                .to_device(self.vs.device())?;
            out.push(self.encode_tokens(&tokens)?.embedding);
        }
        let sorted = Tensor::f_cat(&out, 0)?;
        let mut inverse = vec![0i64; order.len()];
        for (pos, &i) in order.iter().enumerate() {
            inverse[i] = pos as i64;
        }
        let inverse = Tensor::from_slice(&inverse).f_to_device(sorted.device())?;
        Ok(sorted.f_index_select(0, &inverse)?)
    }
}

/// Mean of `tokens [B, L, H]` over `mask [B, L]`, then divided by its L2 norm (at least 1e-12).
pub fn mean_pool_normalize(tokens: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let m = mask.f_to_kind(tokens.kind())?.f_unsqueeze(-1)?;
    let sum = tokens
        .f_mul(&m)?
        .f_sum_dim_intlist([1i64].as_slice(), false, tokens.kind())?;
    let count = m
        .f_sum_dim_intlist([1i64].as_slice(), false, tokens.kind())?
        .f_clamp_min(1e-9)?;
    let mean = sum.f_div(&count)?;
    let norm = mean
        .f_norm_scalaropt_dim(2, [-1i64].as_slice(), true)?
        .f_clamp_min(1e-12)?;
    Ok(mean.f_div(&norm)?)
}
