//! torchrun's environment contract: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`,
//! `MASTER_ADDR`, `MASTER_PORT`. Under Slurm `srun` without torchrun, the ranks fall back to
//! `SLURM_PROCID`, `SLURM_NTASKS` and `SLURM_LOCALID` (the job script exports `MASTER_ADDR` and
//! `MASTER_PORT`, see scripts/slurm-train.sbatch).

use crate::{Result, TorchExtError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEnv {
    pub rank: i64,
    pub world_size: i64,
    pub local_rank: i64,
    pub local_world_size: i64,
    pub master_addr: String,
    pub master_port: u16,
}

fn bad(message: String) -> TorchExtError {
    TorchExtError::Argument {
        call: "launch environment",
        message,
    }
}

impl LaunchEnv {
    /// The process's launch environment; `None` for a plain single-process start (no
    /// `WORLD_SIZE` and no Slurm task count).
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// As [`LaunchEnv::from_env`], reading variables through `get` (for tests).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let pick = |name: &str, slurm: &str| -> Option<(String, String)> {
            get(name)
                .map(|v| (name.to_owned(), v))
                .or_else(|| get(slurm).map(|v| (slurm.to_owned(), v)))
        };
        let int = |(name, value): (String, String)| -> Result<i64> {
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| bad(format!("{name}=`{value}` is not an integer")))
        };
        let Some(world) = pick("WORLD_SIZE", "SLURM_NTASKS") else {
            return Ok(None);
        };
        let world_size = int(world)?;
        if world_size < 1 {
            return Err(bad(format!("WORLD_SIZE must be >= 1, got {world_size}")));
        }
        let rank = match pick("RANK", "SLURM_PROCID") {
            Some(r) => int(r)?,
            None => return Err(bad("WORLD_SIZE is set but RANK is not".into())),
        };
        if !(0..world_size).contains(&rank) {
            return Err(bad(format!(
                "RANK {rank} outside 0..{world_size} (WORLD_SIZE)"
            )));
        }
        let local_rank = match pick("LOCAL_RANK", "SLURM_LOCALID") {
            Some(r) => int(r)?,
            None => rank,
        };
        let local_world_size = match get("LOCAL_WORLD_SIZE") {
            Some(v) => int(("LOCAL_WORLD_SIZE".into(), v))?,
            None => world_size,
        };
        if !(0..local_world_size).contains(&local_rank) {
            return Err(bad(format!(
                "LOCAL_RANK {local_rank} outside 0..{local_world_size} (LOCAL_WORLD_SIZE)"
            )));
        }
        let master_addr = get("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into());
        let master_port = match get("MASTER_PORT") {
            Some(p) => p
                .trim()
                .parse::<u16>()
                .map_err(|_| bad(format!("MASTER_PORT=`{p}` is not a port number")))?,
            None if world_size == 1 => 29500,
            None => return Err(bad("WORLD_SIZE > 1 needs MASTER_PORT".into())),
        };
        Ok(Some(Self {
            rank,
            world_size,
            local_rank,
            local_world_size,
            master_addr,
            master_port,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn torchrun_variables_are_read() {
        let e = LaunchEnv::from_vars(env(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "2"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "29400"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            e,
            LaunchEnv {
                rank: 3,
                world_size: 8,
                local_rank: 1,
                local_world_size: 2,
                master_addr: "node0".into(),
                master_port: 29400
            }
        );
    }

    #[test]
    fn plain_start_is_none_and_slurm_is_a_fallback() {
        assert!(LaunchEnv::from_vars(env(&[])).unwrap().is_none());
        let e = LaunchEnv::from_vars(env(&[
            ("SLURM_NTASKS", "4"),
            ("SLURM_PROCID", "2"),
            ("SLURM_LOCALID", "0"),
            ("LOCAL_WORLD_SIZE", "1"),
            ("MASTER_ADDR", "n1"),
            ("MASTER_PORT", "1234"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((e.rank, e.world_size, e.local_rank), (2, 4, 0));
    }

    #[test]
    fn bad_values_are_named() {
        let err =
            |pairs: &[(&str, &str)]| LaunchEnv::from_vars(env(pairs)).unwrap_err().to_string();
        assert!(
            err(&[("WORLD_SIZE", "2"), ("RANK", "x"), ("MASTER_PORT", "1")]).contains("RANK=`x`")
        );
        assert!(
            err(&[("WORLD_SIZE", "2"), ("RANK", "2"), ("MASTER_PORT", "1")])
                .contains("RANK 2 outside")
        );
        assert!(err(&[("WORLD_SIZE", "2"), ("RANK", "0")]).contains("MASTER_PORT"));
        assert!(err(&[("WORLD_SIZE", "2"), ("MASTER_PORT", "1")]).contains("RANK is not"));
        assert!(
            err(&[("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_PORT", "70000")])
                .contains("MASTER_PORT=`70000`")
        );
    }
}
