//! The NCCL process group. Everywhere: a group on a CUDA device that does not exist is refused
//! with an error naming the device (on a CPU-only machine, any device), before libtorch is
//! asked for one. With `--features cuda-tests` on a GPU host: a world-size-1 group runs every
//! collective on CUDA tensors and refuses CPU tensors.

use std::time::Duration;

use flowscale_torch_ext::c10d::{ProcessGroup, TcpStore};

const TIMEOUT: Duration = Duration::from_secs(20);

/// A world-size-1 store on a loopback port the OS picks (port 0).
fn solo_store() -> TcpStore {
    TcpStore::connect("127.0.0.1", 0, 1, true, TIMEOUT).unwrap()
}

#[test]
fn a_missing_cuda_device_is_an_error_naming_it() {
    let store = solo_store();
    // One past the last visible device: missing on every machine (all of them on a CPU-only one).
    let visible = flowscale_torch_ext::cuda::device_count().unwrap();
    let err = match ProcessGroup::nccl(&store, 0, 1, visible, TIMEOUT) {
        Ok(_) => panic!("cuda:{visible} cannot exist with {visible} visible devices"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&format!("CUDA device cuda:{visible} is not available"))
            && err.contains(&format!("{visible} CUDA device(s) visible")),
        "{err}"
    );
}

#[test]
fn a_rank_outside_the_world_is_refused() {
    let store = solo_store();
    let err = match ProcessGroup::nccl(&store, 1, 1, 0, TIMEOUT) {
        Ok(_) => panic!("rank 1 of a world of 1 accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("rank 1 outside a world of size 1"), "{err}");
}

#[cfg(feature = "cuda-tests")]
mod on_a_gpu {
    use super::*;
    use flowscale_torch_ext::c10d::{Backend, ReduceOp};
    use tch::{Device, Kind, Tensor};

    #[test]
    fn world_size_one_runs_every_collective_on_cuda_tensors() {
        flowscale_torch_ext::c10d::nccl_support().expect("this build has NCCL");
        let store = solo_store();
        let pg = ProcessGroup::nccl(&store, 0, 1, 0, TIMEOUT).unwrap();
        assert_eq!(pg.backend(), Backend::Nccl { device: 0 });
        let dev = Device::Cuda(0);
        let x = Tensor::arange(6, (Kind::Float, dev));
        pg.all_reduce(&[x.shallow_clone()], ReduceOp::Sum).unwrap();
        assert_eq!(Vec::<f32>::try_from(&x).unwrap(), [0., 1., 2., 3., 4., 5.]);
        let b = Tensor::arange(4, (Kind::BFloat16, dev));
        pg.all_reduce_mean(&[b.shallow_clone()]).unwrap();
        assert_eq!(
            Vec::<f32>::try_from(&b.to_kind(Kind::Float)).unwrap(),
            [0., 1., 2., 3.]
        );
        pg.broadcast(&[x.shallow_clone()], 0).unwrap();
        let gathered = pg.all_gather(&x).unwrap();
        assert_eq!(gathered.len(), 1);
        assert_eq!(gathered[0].device(), dev);
        let mine = pg.reduce_scatter_sum(&x).unwrap();
        assert_eq!(
            Vec::<f32>::try_from(&mine).unwrap(),
            [0., 1., 2., 3., 4., 5.]
        );
        let flat = pg.all_gather_flat(&x).unwrap();
        assert_eq!(flat.size(), [6]);
        pg.barrier().unwrap();
        let err = pg
            .all_reduce(
                &[Tensor::ones([2], (Kind::Float, Device::Cpu))],
                ReduceOp::Sum,
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nccl needs contiguous tensors on Cuda(0)"),
            "{err}"
        );
    }
}
