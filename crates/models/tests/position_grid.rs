//! The interpolated position grid (SD3 Sec. 5.3.2) against a per-position f64 reference written
//! from the formula, its agreement with the table at the base size, and the model's use of it
//! for non-square inputs.

mod common;

use common::{max_abs_diff, small_config};
use flowscale_models::embeddings::{crop_position_table, position_table};
use flowscale_models::position_grid::interpolated_positions;
use flowscale_models::{Backbone, MmditConfig, PositionGrid};
use tch::{nn, Device, Kind, Tensor};

/// The embedding written out per token and channel: row `i` at `(i - (h - s)/2) * s0/s`,
/// column `j` alike; channels `[sin(x w_k), cos(x w_k)]` of the column, then of the row, with
/// `w_k = 10000^(-k/(hidden/4))`.
fn reference(hidden: usize, h: usize, w: usize, s: f64, s0: f64) -> Vec<f64> {
    let q = hidden / 4;
    let mut out = Vec::with_capacity(h * w * hidden);
    for i in 0..h {
        for j in 0..w {
            let y = (i as f64 - (h as f64 - s) / 2.0) * s0 / s;
            let x = (j as f64 - (w as f64 - s) / 2.0) * s0 / s;
            for coord in [x, y] {
                let freq = |k: usize| 10000f64.powf(-(k as f64) / q as f64);
                out.extend((0..q).map(|k| (coord * freq(k)).sin()));
                out.extend((0..q).map(|k| (coord * freq(k)).cos()));
            }
        }
    }
    out
}

fn as_f64(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

#[test]
fn interpolated_grid_matches_the_formula() {
    // (hidden, h, w, s, s0): the base size; twice the base (the CPU 32 -> 64 px finetune);
    // non-square buckets with odd and even margins; the paper's worked case (S = 1024: s = 64,
    // s0 = 16, one side of a 192-patch bucket).
    let cases = [
        (16, 8, 8, 8, 8),
        (16, 16, 16, 16, 8),
        (32, 12, 20, 16, 8),
        (32, 21, 11, 15, 16),
        (8, 192, 4, 64, 16),
    ];
    for (hidden, h, w, s, s0) in cases {
        let ours = interpolated_positions(hidden, h, w, s, s0, Device::Cpu).unwrap();
        assert_eq!(ours.size(), [1, h * w, hidden]);
        assert_eq!(ours.kind(), Kind::Float);
        let want = reference(hidden as usize, h as usize, w as usize, s as f64, s0 as f64);
        let got = as_f64(&ours);
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-6, "{hidden} {h}x{w} s={s} s0={s0}: error {err}");
    }
    // The paper's worked value: S = 1024, h_max = 192 puts row p at (p - 64) * 0.25; the
    // central 64-row crop starts at p = 64, coordinate 0, and steps by 0.25.
    let rows = reference(8, 64, 1, 64.0, 16.0);
    let row_sin0 = |i: usize| rows[i * 8 + 4]; // channel 4: sin(y * w_0) = sin(y)
    assert!((row_sin0(0) - 0.0).abs() < 1e-12);
    assert!((row_sin0(5) - (1.25f64).sin()).abs() < 1e-12);
}

/// At the base size a run-built model's table (`pos_embed_max_size` = base = grid side, so
/// token `p` sits at `p * base / M = p`) and the interpolated grid (`i * s0 / s = i`) are the
/// same embedding, bit for bit. SD3's released table (M = 192 at base 64) instead puts token
/// `p` at `p / 3` and crops around the table's centre, so there the two differ by design.
#[test]
fn interpolated_grid_is_the_run_table_at_the_base_size() {
    for (hidden, side) in [(16, 8), (64, 16)] {
        let table = position_table(hidden, side, side, Device::Cpu).unwrap();
        let crop = crop_position_table(&table, side, side, side).unwrap();
        let grid = interpolated_positions(hidden, side, side, side, side, Device::Cpu).unwrap();
        assert_eq!(
            max_abs_diff(&crop, &grid),
            0.0,
            "hidden {hidden} side {side}"
        );
    }
    let sd3 = position_table(64, 192, 64, Device::Cpu).unwrap();
    let crop = crop_position_table(&sd3, 192, 64, 64).unwrap();
    let grid = interpolated_positions(64, 64, 64, 64, 64, Device::Cpu).unwrap();
    assert!(max_abs_diff(&crop, &grid) > 0.1);
}

fn interpolated(base: i64) -> MmditConfig {
    MmditConfig {
        position_grid: PositionGrid::Interpolated { base_size: base },
        ..small_config(1, false)
    }
}

#[test]
fn an_interpolated_model_stores_no_table_and_takes_any_shape() {
    let cfg = interpolated(2);
    let keys: Vec<String> = Backbone::layout(&cfg)
        .unwrap()
        .into_iter()
        .map(|p| p.key)
        .collect();
    assert!(!keys.iter().any(|k| k == "pos_embed.pos_embed"), "{keys:?}");
    let table_keys = Backbone::layout(&small_config(1, false)).unwrap();
    assert!(table_keys.iter().any(|p| p.key == "pos_embed.pos_embed"));
    assert_eq!(table_keys.len(), keys.len() + 1);

    let vs = nn::VarStore::new(Device::Cpu);
    let model = Backbone::new(&vs.root(), &cfg).unwrap();
    // sample_size 8, patch 2: s = 4 patches; a 3 x 7 batch is beyond any 8-patch table.
    let emb = model.position_embedding(3, 7).unwrap();
    let want = reference(8, 3, 7, 4.0, 2.0);
    let err = as_f64(&emb)
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-6, "{err}");
    let x = Tensor::randn([2, 2, 6, 40], (Kind::Float, Device::Cpu));
    let out = model
        .forward(
            &x,
            &Tensor::from_slice(&[10.0f32, 900.0]),
            &Tensor::randn([2, 3, 6], (Kind::Float, Device::Cpu)),
            &Tensor::randn([2, 5], (Kind::Float, Device::Cpu)),
        )
        .unwrap();
    assert_eq!(out.size(), [2, 2, 6, 40]);
    let table_model = Backbone::new(
        &nn::VarStore::new(Device::Cpu).root(),
        &small_config(1, false),
    );
    let err = table_model.unwrap().position_embedding(3, 20).unwrap_err();
    assert!(err.to_string().contains("exceeds"), "{err}");
}

#[test]
fn the_grid_is_recorded_in_flowscale_json_and_refused_by_diffusers_export() {
    let table_json = small_config(1, false).to_diffusers_json().unwrap();
    assert!(!table_json.contains("position_grid"), "{table_json}");
    let cfg = interpolated(16);
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(
        json.contains(r#""position_grid":{"kind":"interpolated","base_size":16}"#),
        "{json}"
    );
    assert_eq!(MmditConfig::from_json(&json).unwrap(), cfg);
    let bad = MmditConfig::from_json(&json.replace("16}", "0}")).unwrap_err();
    assert!(bad.to_string().contains("position_grid.base_size"), "{bad}");

    let vs = nn::VarStore::new(Device::Cpu);
    Backbone::new(&vs.root(), &cfg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = flowscale_models::save_mmdit(
        &vs,
        &cfg,
        &dir.path().join("d"),
        flowscale_models::Layout::Diffusers,
    )
    .unwrap_err();
    assert!(err.to_string().contains("SD3 single file"), "{err}");
    let file = dir.path().join("m.safetensors");
    let sd3 = flowscale_models::Layout::Sd3 { prefixed: false };
    flowscale_models::save_mmdit(&vs, &cfg, &file, sd3).unwrap();
    let loaded = flowscale_models::load_mmdit(&file, Device::Cpu).unwrap();
    assert_eq!(loaded.model.config(), &cfg);
}
