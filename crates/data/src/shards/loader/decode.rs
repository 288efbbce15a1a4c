//! Decoding shards on worker threads, delivered in the order they were asked for.
//!
//! The stream asks for shards in a known order (the epoch plans, pass 0); jobs are numbered and
//! handed to whichever worker is free, and results wait in a reorder map until their turn. So
//! thread timing and the worker count change only how early a shard is ready, never which
//! shard comes next.

use super::config::{LoaderConfig, ShardSource};
use super::plan::epoch_plan;
use crate::error::{DataError, Result};
use crate::shards::{read_latent_shard, LatentSample};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Reads a shard and checks it against what the manifest promised.
pub fn decode_shard(src: &ShardSource, shape: Option<[i64; 3]>) -> Result<Vec<LatentSample>> {
    let samples = read_latent_shard(&src.path)?;
    if samples.len() as u64 != src.samples {
        return Err(DataError::corrupt(
            &src.path,
            format!(
                "holds {} samples, the manifest says {}",
                samples.len(),
                src.samples
            ),
        ));
    }
    let want = shape
        .map(|s| s.to_vec())
        .or_else(|| samples.first().map(|s| s.mean.size()));
    for s in &samples {
        for (what, t) in [("mean", &s.mean), ("std", &s.std)] {
            if Some(t.size()) != want {
                return Err(DataError::corrupt(
                    &src.path,
                    format!(
                        "sample {}: {what} has shape {:?}, expected {:?}",
                        s.key,
                        t.size(),
                        want.clone().unwrap_or_default()
                    ),
                ));
            }
        }
    }
    Ok(samples)
}

type Decoded = (u64, Result<Vec<LatentSample>>);

pub struct DecodePool {
    cfg: Arc<LoaderConfig>,
    jobs: Option<Sender<(u64, usize)>>,
    results: Receiver<Decoded>,
    workers: Vec<JoinHandle<()>>,
    /// Jobs handed out and not yet taken: (job number, epoch, index in its plan, shard).
    queue: VecDeque<(u64, u64, usize, usize)>,
    /// Jobs whose shard the stream no longer needs (an epoch ended before reaching it).
    discarded: HashSet<u64>,
    ready: BTreeMap<u64, Result<Vec<LatentSample>>>,
    next_job: u64,
    /// Next (epoch, index in its plan) to hand out; its plan is cached.
    cursor: (u64, usize),
    cursor_plan: Vec<usize>,
    window: usize,
}

impl DecodePool {
    /// Workers that decode, ahead of the stream, the pass-0 shards from `(epoch, index)` on.
    pub fn start(cfg: Arc<LoaderConfig>, epoch: u64, index: usize) -> Self {
        let (job_tx, job_rx) = channel::<(u64, usize)>();
        let (res_tx, results) = channel::<Decoded>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..cfg.workers)
            .map(|_| {
                let (job_rx, res_tx, cfg) = (job_rx.clone(), res_tx.clone(), cfg.clone());
                std::thread::spawn(move || loop {
                    let job = job_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((n, shard))) = job else { return };
                    let out = decode_shard(&cfg.shards[shard], cfg.latent_shape);
                    if res_tx.send((n, out)).is_err() {
                        return;
                    }
                })
            })
            .collect();
        let window = 2 * cfg.workers;
        let cursor_plan = epoch_plan(&cfg, epoch).shards;
        Self {
            cfg,
            jobs: Some(job_tx),
            results,
            workers,
            queue: VecDeque::new(),
            discarded: HashSet::new(),
            ready: BTreeMap::new(),
            next_job: 0,
            cursor: (epoch, index),
            cursor_plan,
            window,
        }
    }

    fn top_up(&mut self) {
        while self.queue.len() < self.window {
            while self.cursor.1 >= self.cursor_plan.len() {
                self.cursor = (self.cursor.0 + 1, 0);
                self.cursor_plan = epoch_plan(&self.cfg, self.cursor.0).shards;
            }
            let (epoch, index) = self.cursor;
            let shard = self.cursor_plan[index];
            self.cursor.1 += 1;
            let n = self.next_job;
            self.next_job += 1;
            if let Some(tx) = &self.jobs {
                // A send fails only when every worker is gone; recv reports that below.
                let _ = tx.send((n, shard));
            }
            self.queue.push_back((n, epoch, index, shard));
        }
    }

    /// Pass-0 shard `index` of `epoch`'s plan, which is `shard`. Jobs before it are dropped:
    /// an epoch ends when its batch count is reached, possibly before its last shard.
    pub fn next(&mut self, epoch: u64, index: usize, shard: usize) -> Result<Vec<LatentSample>> {
        self.top_up();
        let n = loop {
            let (n, e, i, s) = self.queue.pop_front().expect("topped up");
            if (e, i) == (epoch, index) {
                assert_eq!(s, shard, "decode order diverged from the stream");
                break n;
            }
            assert!(
                (e, i) < (epoch, index),
                "decode order diverged from the stream"
            );
            if self.ready.remove(&n).is_none() {
                self.discarded.insert(n);
            }
            self.top_up();
        };
        let out = loop {
            if let Some(r) = self.ready.remove(&n) {
                break r;
            }
            match self.results.recv() {
                Ok((k, r)) => {
                    if !self.discarded.remove(&k) {
                        self.ready.insert(k, r);
                    }
                }
                Err(_) => {
                    break Err(DataError::Invalid(
                        "latent shard loader: a decode worker stopped unexpectedly".into(),
                    ))
                }
            }
        };
        self.top_up();
        out
    }
}

impl Drop for DecodePool {
    fn drop(&mut self) {
        // Closing the job channel ends the workers once their current shard is done.
        self.jobs.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
