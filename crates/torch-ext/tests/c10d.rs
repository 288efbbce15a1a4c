//! Two-process c10d tests on loopback with Gloo. The test spawns this same test binary twice
//! with `--ignored --exact <worker>` and the rank in the environment; each worker runs the
//! collectives, asserts what it received and exits 0.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flowscale_torch_ext::c10d::{LaunchEnv, ProcessGroup, ReduceOp, TcpStore};
use tch::{Kind, Tensor};

const TIMEOUT: Duration = Duration::from_secs(5);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `worker` as ranks 0 and 1; returns each rank's (exit success, stderr).
fn spawn_pair(worker: &str) -> Vec<(bool, String)> {
    let port = free_port().to_string();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|rank| {
            Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    worker,
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", "2")
                .env("LOCAL_RANK", rank.to_string())
                .env("LOCAL_WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", &port)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        })
        .collect()
}

fn connect() -> (LaunchEnv, ProcessGroup) {
    let env = LaunchEnv::from_env()
        .unwrap()
        .expect("launched by the test");
    let store = TcpStore::connect(
        &env.master_addr,
        env.master_port,
        env.world_size,
        env.rank == 0,
        TIMEOUT,
    )
    .unwrap();
    let pg = ProcessGroup::gloo(&store, env.rank, env.world_size, "127.0.0.1", TIMEOUT).unwrap();
    (env, pg)
}

#[test]
fn collectives_across_two_processes() {
    for (rank, (ok, log)) in spawn_pair("worker_collectives").into_iter().enumerate() {
        assert!(ok, "rank {rank} failed:\n{log}");
        assert!(
            log.contains("worker_collectives ... ok"),
            "rank {rank}:\n{log}"
        );
    }
}

#[test]
#[ignore = "a worker: run by collectives_across_two_processes"]
fn worker_collectives() {
    let (env, pg) = connect();
    let r = env.rank as f64;
    // Sum and max of [r, 10 r, 100] over ranks 0 and 1; two tensors in one call.
    let a = Tensor::from_slice(&[r, 10.0 * r, 100.0]);
    let b = Tensor::from_slice(&[r + 1.0]).to_kind(Kind::Float);
    pg.all_reduce(&[a.shallow_clone(), b.shallow_clone()], ReduceOp::Sum)
        .unwrap();
    assert_eq!(Vec::<f64>::try_from(&a).unwrap(), vec![1.0, 10.0, 200.0]);
    assert_eq!(Vec::<f32>::try_from(&b).unwrap(), vec![3.0]);
    let m = Tensor::from_slice(&[r, -r]);
    pg.all_reduce(&[m.shallow_clone()], ReduceOp::Max).unwrap();
    assert_eq!(Vec::<f64>::try_from(&m).unwrap(), vec![1.0, 0.0]);
    let mean = Tensor::from_slice(&[2.0 * r + 1.0]);
    pg.all_reduce_mean(&[mean.shallow_clone()]).unwrap();
    assert_eq!(Vec::<f64>::try_from(&mean).unwrap(), vec![2.0]);
    // bf16 (the trainer's run.dist_grad_dtype = "bf16" buckets) reduces too.
    let h = Tensor::from_slice(&[r + 0.5, 4.0 * r]).to_kind(Kind::BFloat16);
    pg.all_reduce_mean(&[h.shallow_clone()]).unwrap();
    assert_eq!(
        Vec::<f32>::try_from(&h.to_kind(Kind::Float)).unwrap(),
        vec![1.0, 2.0]
    );
    // Broadcast from rank 1 overwrites rank 0's values.
    let w = Tensor::from_slice(&[r, r, r]).view([3]);
    pg.broadcast(&[w.shallow_clone()], 1).unwrap();
    assert_eq!(Vec::<f64>::try_from(&w).unwrap(), vec![1.0, 1.0, 1.0]);
    // All-gather in rank order.
    let g = pg
        .all_gather(&Tensor::from_slice(&[r * 7.0, r * 7.0 + 1.0]))
        .unwrap();
    let got: Vec<Vec<f64>> = g.iter().map(|t| Vec::try_from(t).unwrap()).collect();
    assert_eq!(got, vec![vec![0.0, 1.0], vec![7.0, 8.0]]);
    // Reduce-scatter: each rank gets its half of the sum; a bf16 input reduces too.
    let flat = Tensor::from_slice(&[r, 1.0 + r, 10.0 * r, 5.0]).to_kind(Kind::Float);
    let mine = pg.reduce_scatter_sum(&flat).unwrap();
    let want = [[1.0f32, 3.0], [10.0, 10.0]][env.rank as usize];
    assert_eq!(Vec::<f32>::try_from(&mine).unwrap(), want);
    let half = pg
        .reduce_scatter_sum(&flat.to_kind(Kind::BFloat16))
        .unwrap();
    assert_eq!(half.kind(), Kind::BFloat16);
    // Flat all-gather: rank order, one tensor.
    let all = pg
        .all_gather_flat(&Tensor::from_slice(&[r, -r, 3.0 * r]))
        .unwrap();
    assert_eq!(
        Vec::<f64>::try_from(&all).unwrap(),
        vec![0.0, 0.0, 0.0, 1.0, -1.0, 3.0]
    );
    let err = pg
        .reduce_scatter_sum(&Tensor::zeros([3], (Kind::Float, tch::Device::Cpu)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("divides by the world size 2"), "{err}");
    pg.barrier().unwrap();
    // Argument checks name the problem instead of crashing in C++.
    let err = pg
        .broadcast(&[w.shallow_clone()], 5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("root 5"), "{err}");
    let strided = Tensor::zeros([4, 4], (Kind::Float, tch::Device::Cpu)).tr();
    let err = pg
        .all_reduce(&[strided], ReduceOp::Sum)
        .unwrap_err()
        .to_string();
    assert!(err.contains("contiguous"), "{err}");
}

#[test]
fn a_dead_peer_is_an_error_not_a_hang() {
    let start = Instant::now();
    let results = spawn_pair("worker_dead_peer");
    let elapsed = start.elapsed();
    let (ok0, log0) = &results[0];
    assert!(ok0, "rank 0 should have seen an error and passed:\n{log0}");
    assert!(log0.contains("collective error:"), "{log0}");
    // Rank 1 exits on purpose with code 3.
    assert!(!results[1].0);
    // Connect + 5 s collective timeout, with margin for a loaded 2-core machine.
    assert!(elapsed < Duration::from_secs(40), "took {elapsed:?}");
}

#[test]
#[ignore = "a worker: run by a_dead_peer_is_an_error_not_a_hang"]
fn worker_dead_peer() {
    let (env, pg) = connect();
    pg.barrier().unwrap();
    if env.rank == 1 {
        // Dies without a word, as a killed or crashed rank would.
        std::process::exit(3);
    }
    std::thread::sleep(Duration::from_millis(200));
    let t = Tensor::ones([1024], (Kind::Float, tch::Device::Cpu));
    let started = Instant::now();
    let err = pg
        .all_reduce(&[t], ReduceOp::Sum)
        .expect_err("the peer is gone");
    println!("collective error: {err} (after {:?})", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(20));
}
