//! A checkpoint's `state.json`, read as `CheckpointStore::load` reads it, then used as a resume
//! uses it: the pixel sampler continues at `data_epoch`/`data_index`, and the latent shard
//! loader continues at the saved `data_positions` over two small shards made once per process
//! (its configuration taken from the position, so the position's own checks are what is
//! exercised). What parses must also save and parse back unchanged.
#![no_main]

use flowscale_data::shards::{
    LatentSample, LatentShardLoader, LatentShardWriter, LoaderConfig, LoaderPosition, ShardSource,
};
use flowscale_data::{BatchSampler, SamplerPosition};
use flowscale_train::state::TrainState;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tch::{Kind, Tensor};

/// Samples per shard of the fixed shard set.
const SAMPLES: u64 = 3;

fn shards() -> &'static [ShardSource] {
    static SHARDS: OnceLock<Vec<ShardSource>> = OnceLock::new();
    SHARDS.get_or_init(|| {
        (0..2)
            .map(|s| {
                let path = flowscale_fuzz::scratch_dir().join(format!("train-{s:06}.tar"));
                let mut w = LatentShardWriter::create(&path).expect("shard");
                for i in 0..SAMPLES {
                    let v = Tensor::full(
                        [4, 2, 2],
                        (s * 10 + i) as f64,
                        (Kind::Float, tch::Device::Cpu),
                    );
                    w.append(&LatentSample {
                        key: format!("s{s}-{i}"),
                        mean: v.shallow_clone(),
                        std: v.ones_like(),
                        flip: None,
                        label: Some(i as i64),
                        captions: Vec::new(),
                    })
                    .expect("sample");
                }
                w.finish().expect("shard written");
                ShardSource {
                    path,
                    samples: SAMPLES,
                }
            })
            .collect()
    })
}

fn resume_loader(pos: &LoaderPosition) {
    // Small shapes only: the run's config (not the state) sets these, and a huge batch or
    // buffer would measure the allocator, not the reader.
    if pos.batch_size > 8 || pos.shuffle_buffer > 16 || pos.world_size > 2 {
        return;
    }
    let cfg = LoaderConfig {
        rank: pos.rank,
        world_size: pos.world_size,
        shuffle_buffer: pos.shuffle_buffer,
        workers: 1,
        prefetch: 1,
        latent_shape: Some([4, 2, 2]),
        ..LoaderConfig::new(shards().to_vec(), pos.batch_size, 7)
    };
    let loader = LatentShardLoader::at(cfg, pos);
    flowscale_fuzz::show("LatentShardLoader::at", &loader);
    if let Ok(mut loader) = loader {
        for _ in 0..4 {
            let batch = loader.next_batch();
            flowscale_fuzz::show("next_batch", &batch);
            if batch.is_err() {
                break;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = serde_json::from_str::<TrainState>(text);
    flowscale_fuzz::show("state.json", &parsed);
    let Ok(state) = parsed else {
        return;
    };
    let json = serde_json::to_vec_pretty(&state).expect("a state serialises");
    let back: TrainState = serde_json::from_slice(&json).expect("a saved state parses");
    assert_eq!(back, state);
    let position = SamplerPosition {
        epoch: state.data_epoch,
        index: state.data_index,
    };
    if let Ok(mut sampler) = BatchSampler::at(10, 3, state.seed, position) {
        for _ in 0..5 {
            let _ = sampler.next_indices();
        }
    }
    if let Some(pos) = state.data_positions.as_ref().and_then(|p| p.first()) {
        resume_loader(pos);
    }
});
