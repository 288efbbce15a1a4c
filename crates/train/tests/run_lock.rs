//! One writer per run directory: a second trainer on a run that is being trained is refused
//! with the holder's pid (instead of both overwriting checkpoints and `metrics.jsonl`), the lock
//! goes with the holder, and a fresh run in a directory whose earlier attempt died before its
//! first checkpoint starts a new `metrics.jsonl` instead of appending to the old one.

mod common;

use common::{quiet, tiny_config};
use flowscale_train::{train, TrainError, Trainer};

#[test]
fn a_second_trainer_on_a_run_in_use_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(tmp.path(), "busy", &["train.steps=2"]);
    let first = Trainer::new(cfg.clone(), quiet()).unwrap();
    let err = match Trainer::new(cfg.clone(), quiet()) {
        Ok(_) => panic!("two trainers held one run directory"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(matches!(err, TrainError::Locked(_)), "{msg}");
    assert!(
        msg.contains("busy") && msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    // The holder goes, and so does its lock.
    drop(first);
    let state = train(cfg, quiet()).unwrap();
    assert_eq!(state.step, 2);
}

#[test]
fn a_fresh_run_does_not_append_to_a_dead_attempts_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("again");
    std::fs::create_dir_all(&run).unwrap();
    // What an attempt killed before its first checkpoint leaves behind.
    std::fs::write(
        run.join("metrics.jsonl"),
        "{\"step\":1,\"kind\":\"train\",\"train_loss\":123.0}\n",
    )
    .unwrap();
    let cfg = tiny_config(tmp.path(), "again", &["train.steps=2", "logging.every=1"]);
    train(cfg, quiet()).unwrap();
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(!metrics.contains("123.0"), "{metrics}");
    let steps: Vec<u64> = metrics
        .lines()
        .filter(|l| l.contains("\"kind\":\"train\""))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, vec![1, 2], "{metrics}");
}
