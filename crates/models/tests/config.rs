//! Config presets, JSON and validation.

use flowscale_models::{MmditConfig, PRESETS};

#[test]
fn presets_follow_the_scaling_rule() {
    for name in PRESETS {
        let cfg = MmditConfig::preset(name).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.hidden(), 64 * cfg.num_layers, "{name}");
        assert_eq!(cfg.num_attention_heads, cfg.num_layers, "{name}");
    }
    let large = MmditConfig::preset("sd3.5-large").unwrap();
    assert_eq!((large.num_layers, large.qk_norm()), (38, true));
    assert_eq!(
        MmditConfig::preset("sd3-medium").unwrap(),
        MmditConfig::from_depth(24)
    );
    let err = MmditConfig::preset("d99").unwrap_err().to_string();
    assert!(err.contains("d99") && err.contains("sd3-medium"), "{err}");
}

#[test]
fn diffusers_config_json_parses_and_round_trips() {
    // The SD3-medium transformer config.json as diffusers writes it.
    let text = r#"{
      "_class_name": "SD3Transformer2DModel", "_diffusers_version": "0.29.0.dev0",
      "attention_head_dim": 64, "caption_projection_dim": 1536, "in_channels": 16,
      "joint_attention_dim": 4096, "num_attention_heads": 24, "num_layers": 24,
      "out_channels": 16, "patch_size": 2, "pooled_projection_dim": 2048,
      "pos_embed_max_size": 192, "sample_size": 128
    }"#;
    let cfg = MmditConfig::from_json(text).unwrap();
    assert_eq!(cfg, MmditConfig::from_depth(24));
    let again = MmditConfig::from_json(&cfg.to_diffusers_json().unwrap()).unwrap();
    assert_eq!(again, cfg);
}

#[test]
fn invalid_configs_report_every_problem() {
    let mut cfg = MmditConfig::tiny(2);
    cfg.qk_norm = Some("layer_norm".into());
    cfg.dual_attention_layers = vec![0];
    cfg.caption_projection_dim = 100;
    let err = cfg.validate().unwrap_err().to_string();
    for part in ["qk_norm", "dual_attention_layers", "caption_projection_dim"] {
        assert!(err.contains(part), "{part} missing in: {err}");
    }
    let unknown = MmditConfig::from_json(r#"{"num_layers": 2, "bogus": 1}"#)
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("bogus"), "{unknown}");
}

#[test]
fn absurd_sizes_are_refused_before_anything_is_counted_or_allocated() {
    // depth 100000 overflowed the parameter count into a negative number.
    let err =
        match flowscale_models::param_count(&flowscale_models::MmditConfig::from_depth(100_000)) {
            Ok(_) => panic!("a 100000-layer model was counted"),
            Err(e) => e.to_string(),
        };
    assert!(
        err.contains("num_layers must be at most 1024") && err.contains("hidden size"),
        "{err}"
    );
    assert!(flowscale_models::param_count(&flowscale_models::MmditConfig::from_depth(38)).is_ok());
}
