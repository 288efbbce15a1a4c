//! Parity of the DiT backbone and the CrossDiT block with diffusers' `DiTTransformer2DModel` and
//! PixArt's `BasicTransformerBlock` (fixtures from scripts/fixtures/backbones_reference.py,
//! described in crates/models/tests/fixtures/backbones/README.md). Unit tests, because they feed
//! the conditioning (DiT's class-conditional vector, PixArt's adaLN-single modulation) through
//! the crate's test-only hooks.

use crate::backbone::{parity::forward_conditioned, Backbone};
use crate::backbone_kind::BackboneKind;
use crate::builder::Scope;
use crate::checkpoint::{safetensors_io, StateDict};
use crate::config::MmditConfig;
use crate::dit_block::{parity::forward_with_modulation, DitBlock};
use crate::position_grid::PositionGrid;
use std::collections::BTreeSet;
use std::path::PathBuf;
use tch::{nn, Device, Kind, Tensor};

fn fixture(name: &str) -> StateDict {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/backbones")
        .join(name);
    safetensors_io::read(&path, Kind::Float, Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .tensors
        .into_iter()
        .collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

/// Copies every tensor of `state` into the variable of the same name, checking shapes; returns
/// the names of the variables `state` did not cover.
fn copy_into(vs: &nn::VarStore, state: &StateDict) -> BTreeSet<String> {
    let vars = vs.variables();
    tch::no_grad(|| {
        for (k, src) in state {
            let dst = vars
                .get(k)
                .unwrap_or_else(|| panic!("{k} is not a variable of the model"));
            assert_eq!(dst.size(), src.size(), "{k}");
            dst.shallow_clone().copy_(src);
        }
    });
    vars.into_keys()
        .filter(|k| !state.contains_key(k))
        .collect()
}

/// The diffusers DiT fixture's config as a flowscale DiT backbone: 2 heads of 8, depth 2, 8x8
/// latents of 4 channels, patch 2, a 4x4 position table based at 4 (diffusers' `sample_size`
/// 8 / patch 2). The text dims are arbitrary: the test passes no context tokens.
fn dit_config() -> MmditConfig {
    MmditConfig {
        sample_size: 8,
        patch_size: 2,
        in_channels: 4,
        num_layers: 2,
        attention_head_dim: 8,
        num_attention_heads: 2,
        joint_attention_dim: 4,
        caption_projection_dim: 16,
        pooled_projection_dim: 3,
        out_channels: Some(4),
        pos_embed_max_size: Some(4),
        qk_norm: None,
        dual_attention_layers: vec![],
        position_grid: PositionGrid::Table,
        backbone: BackboneKind::Dit,
        context_split: None,
    }
}

/// diffusers' `DiTTransformer2DModel` keys to flowscale's: the final adaLN `proj_out_1` gives
/// (shift, scale), flowscale's `norm_out.linear` (scale, shift), so its halves swap;
/// `proj_out_2` is `proj_out`; the patch conv and the blocks keep their keys.
fn dit_from_diffusers(state: StateDict) -> StateDict {
    state
        .into_iter()
        .map(|(k, v)| {
            assert!(
                !k.contains("norm1.emb"),
                "{k}: the fixture drops the embedders"
            );
            if let Some(leaf) = k.strip_prefix("proj_out_1.") {
                let halves = v.chunk(2, 0);
                let swapped = Tensor::cat(&[&halves[1], &halves[0]], 0);
                (format!("norm_out.linear.{leaf}"), swapped)
            } else if let Some(leaf) = k.strip_prefix("proj_out_2.") {
                (format!("proj_out.{leaf}"), v)
            } else {
                (k, v)
            }
        })
        .collect()
}

#[test]
fn dit_backbone_matches_diffusers_dit() {
    tch::set_num_threads(1);
    let cfg = dit_config();
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Backbone::new(&vs.root(), &cfg).unwrap();
    let uncovered = copy_into(&vs, &dit_from_diffusers(fixture("dit_weights.safetensors")));
    // Only what the injected conditioning vector and the empty context stand for, and the
    // fixed table (checked below), stay at our initialisation.
    for k in &uncovered {
        assert!(
            k.starts_with("time_text_embed.")
                || k.starts_with("context_embedder.")
                || k == "pos_embed.pos_embed",
            "{k} got no diffusers weight"
        );
    }
    let io = fixture("dit_io.safetensors");

    // The position table of this config is diffusers' (grid 4, base 4), not by assumption.
    let table = &vs.variables()["pos_embed.pos_embed"];
    let table_err = max_abs_diff(table, &io["pos_embed"]);
    println!("dit: position table max |flowscale - diffusers| = {table_err:.3e}");
    assert!(table_err < 1e-6, "position table differs by {table_err}");

    let latents = &io["latents"];
    let b = latents.size()[0];
    let context = Tensor::zeros([b, 0, cfg.joint_attention_dim], (Kind::Float, Device::Cpu));
    let out = tch::no_grad(|| forward_conditioned(&model, latents, &context, &io["c"])).unwrap();
    let err = max_abs_diff(&out, &io["output"]);
    println!("dit: max |flowscale - diffusers| = {err:.3e}");
    assert!(err < 1e-4, "dit output differs by {err}");
    // Not trivially small: the comparison means something.
    assert!(io["output"].abs().max().double_value(&[]) > 0.1);

    // The swap of the final modulation's halves is needed: without it the output differs.
    let raw = fixture("dit_weights.safetensors");
    let unswapped: StateDict = ["weight", "bias"]
        .into_iter()
        .map(|leaf| {
            (
                format!("norm_out.linear.{leaf}"),
                raw[&format!("proj_out_1.{leaf}")].shallow_clone(),
            )
        })
        .collect();
    copy_into(&vs, &unswapped);
    let wrong = tch::no_grad(|| forward_conditioned(&model, latents, &context, &io["c"])).unwrap();
    assert!(max_abs_diff(&wrong, &io["output"]) > 1e-2);
}

#[test]
fn cross_dit_block_matches_pixart_block() {
    tch::set_num_threads(1);
    let (dim, heads, head_dim) = (16, 2, 8);
    let vs = nn::VarStore::new(Device::Cpu);
    let block = DitBlock::new(&Scope::store(vs.root()), dim, heads, head_dim, false, true).unwrap();
    let mut weights = fixture("crossdit_block_weights.safetensors");
    let table = weights
        .remove("scale_shift_table")
        .expect("scale_shift_table");
    let uncovered = copy_into(&vs, &weights);
    // The block's own modulation linear is bypassed: the modulation is given.
    assert_eq!(
        uncovered,
        BTreeSet::from([
            "norm1.linear.weight".to_owned(),
            "norm1.linear.bias".to_owned()
        ])
    );
    let io = fixture("crossdit_block_io.safetensors");
    let m = &io["modulation"];
    let b = m.size()[0];
    // The stored modulation is PixArt's derivation from the table and the timestep vector.
    let derived = table.unsqueeze(0) + io["timestep"].reshape([b, 6, dim]);
    assert!(max_abs_diff(&derived, m) < 1e-7);
    let m: Vec<Tensor> = (0..6).map(|i| m.select(1, i)).collect();
    let out =
        tch::no_grad(|| forward_with_modulation(&block, &io["x"], &io["context"], &m)).unwrap();
    let err = max_abs_diff(&out, &io["output"]);
    println!("crossdit block: max |flowscale - diffusers| = {err:.3e}");
    assert!(err < 1e-4, "crossdit block output differs by {err}");
    assert!(io["output"].abs().max().double_value(&[]) > 0.1);
}
