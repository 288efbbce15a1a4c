//! `flowscale launch --nproc-per-node N [--nnodes M --node-rank K --master-addr A --master-port P]
//! -- train CONFIG ...`: starts N copies of flowscale on this node with torchrun's environment
//! (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`), so a
//! data-parallel run needs neither Python nor torchrun. When one rank fails, the others are
//! stopped and the launcher exits with the failing rank's status.
//!
//! Signals: SIGINT/SIGTERM to the launcher are forwarded to every rank (which checkpoint and stop
//! together), and the launcher exits with 128 + the signal once they have. Each rank also gets
//! SIGTERM from the kernel if the launcher itself dies (`PR_SET_PDEATHSIG`), so no rank is left
//! running as an orphan.
//!
//! Output: every line a rank writes comes out of the launcher's stdout or stderr whole, prefixed
//! `[rank R] `, so the ranks' errors and logs do not interleave mid-line and each says whose it is.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Processes on this node (one per GPU on GPU hosts).
    #[arg(long = "nproc-per-node", default_value_t = 1)]
    nproc_per_node: u32,
    /// Nodes in the job.
    #[arg(long, default_value_t = 1)]
    nnodes: u32,
    /// This node's index in 0..nnodes.
    #[arg(long = "node-rank", default_value_t = 0)]
    node_rank: u32,
    /// Address of node 0 (the rendezvous host).
    #[arg(long = "master-addr", default_value = "127.0.0.1")]
    master_addr: String,
    /// Rendezvous port on node 0 (default: a free port, single-node jobs only).
    #[arg(long = "master-port")]
    master_port: Option<u16>,
    /// The flowscale command each rank runs, after `--`, e.g. `-- train configs/demo.toml`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Which of the launcher's streams a rank's stream is copied to.
#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Copies `from` to the launcher's `to` line by line, each line prefixed and written in one call
/// under the stream's lock (so no other rank's bytes land inside it), until the rank closes it.
/// Bytes pass through as they are: a line need not be UTF-8.
fn relay(from: impl Read + Send + 'static, prefix: String, to: Stream) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut line = prefix.clone().into_bytes();
        loop {
            line.truncate(prefix.len());
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if !line.ends_with(b"\n") {
                line.push(b'\n');
            }
            // A failed write (the launcher's own output closed) is dropped: the loop keeps
            // draining the rank so it never blocks on a full pipe.
            let _ = match to {
                Stream::Stdout => std::io::stdout().lock().write_all(&line),
                Stream::Stderr => std::io::stderr().lock().write_all(&line),
            };
        }
    })
}

/// Waits for every relay: what the ranks wrote before exiting is out before the launcher exits.
fn join_relays(relays: &mut Vec<JoinHandle<()>>) {
    for r in relays.drain(..) {
        let _ = r.join();
    }
}

fn stop_all(children: &mut [(u32, Child)]) {
    for (_, c) in children.iter_mut() {
        let _ = c.kill();
    }
    for (_, c) in children.iter_mut() {
        let _ = c.wait();
    }
}

pub fn run(args: &LaunchArgs) -> anyhow::Result<()> {
    if args.nproc_per_node == 0 || args.nnodes == 0 || args.node_rank >= args.nnodes {
        bail!(
            "--nproc-per-node ({}) and --nnodes ({}) must be >= 1 and --node-rank ({}) < --nnodes",
            args.nproc_per_node,
            args.nnodes,
            args.node_rank
        );
    }
    let port = match (args.master_port, args.nnodes) {
        (Some(p), _) => p,
        (None, 1) => free_port()?,
        (None, _) => bail!("multi-node jobs need --master-port (the same on every node)"),
    };
    let exe = std::env::current_exe().context("locating the flowscale binary")?;
    let world = args.nproc_per_node * args.nnodes;
    let mut children: Vec<(u32, Child)> = Vec::new();
    let mut relays: Vec<JoinHandle<()>> = Vec::new();
    for local in 0..args.nproc_per_node {
        let rank = args.node_rank * args.nproc_per_node + local;
        let mut command = Command::new(&exe);
        // SAFETY: prctl is async-signal-safe, the only call made between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // Its own process group: a terminal's Ctrl-C reaches the launcher only, which forwards
        // it once (a rank that saw it twice would stop without its checkpoint).
        let child = command
            .process_group(0)
            .args(&args.command)
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("LOCAL_RANK", local.to_string())
            .env("LOCAL_WORLD_SIZE", args.nproc_per_node.to_string())
            .env("MASTER_ADDR", &args.master_addr)
            .env("MASTER_PORT", port.to_string())
            .env(
                flowscale_train::interrupt::RELAY_ENV,
                std::process::id().to_string(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match child {
            Ok(mut c) => {
                let prefix = format!("[rank {rank}] ");
                if let Some(out) = c.stdout.take() {
                    relays.push(relay(out, prefix.clone(), Stream::Stdout));
                }
                if let Some(err) = c.stderr.take() {
                    relays.push(relay(err, prefix, Stream::Stderr));
                }
                children.push((rank, c));
            }
            Err(e) => {
                stop_all(&mut children);
                join_relays(&mut relays);
                return Err(e).with_context(|| format!("starting rank {rank}"));
            }
        }
    }
    flowscale_train::interrupt::install();
    let mut forwarded = None;
    // Poll rather than wait in order: the first failure anywhere ends the job.
    while !children.is_empty() {
        if let (None, Some(signal)) = (forwarded, flowscale_train::interrupt::requested()) {
            for (_, c) in &children {
                // SAFETY: kill(2) on our own children's pids.
                unsafe { libc::kill(c.id() as libc::pid_t, signal) };
            }
            eprintln!(
                "launch: {} forwarded to {} rank(s); waiting for their checkpoint",
                flowscale_train::interrupt::name(signal),
                children.len()
            );
            forwarded = Some(signal);
        }
        let mut i = 0;
        while i < children.len() {
            if let Some(status) = children[i].1.try_wait()? {
                let (rank, _) = children.remove(i);
                // An interrupted rank exits with 128 + signal, as asked.
                if !status.success() && forwarded.is_none() {
                    stop_all(&mut children);
                    join_relays(&mut relays);
                    bail!("rank {rank} failed ({status}); stopped the other ranks");
                }
            } else {
                i += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    join_relays(&mut relays);
    if let Some(signal) = forwarded {
        std::process::exit(128 + signal);
    }
    Ok(())
}
