//! Which device a rank computes on and which process group carries its collectives: pure
//! functions of the config, the launch environment and the number of visible CUDA devices, so
//! the rules are unit-tested on any machine.

use crate::config::{DeviceChoice, DistBackend};
use crate::error::{Result, TrainError};
use flowscale_torch_ext::c10d::Backend;
use tch::Device;

/// The device of a process. Alone (`local_rank` None) a CUDA run uses cuda:0. Under a launcher
/// each process takes one GPU, cuda:LOCAL_RANK (torchrun's contract), unless exactly one device
/// is visible: then the launcher (srun --gpus-per-task, a CUDA_VISIBLE_DEVICES per rank) has
/// bound one GPU per process already and it is cuda:0.
pub fn rank_device(
    choice: DeviceChoice,
    local_rank: Option<i64>,
    cuda_devices: usize,
) -> Result<Device> {
    let want_cuda = match choice {
        DeviceChoice::Cpu => return Ok(Device::Cpu),
        DeviceChoice::Auto => cuda_devices > 0,
        DeviceChoice::Cuda => {
            if cuda_devices == 0 {
                return Err(TrainError::Invalid(
                    "run.device = \"cuda\" but no CUDA device is available (flowscale info \
                     shows what libtorch sees); use \"auto\" or \"cpu\""
                        .into(),
                ));
            }
            true
        }
    };
    if !want_cuda {
        return Ok(Device::Cpu);
    }
    let index = match local_rank {
        None => 0,
        Some(r) if (r as usize) < cuda_devices => r as usize,
        Some(_) if cuda_devices == 1 => 0,
        Some(r) => {
            return Err(TrainError::Invalid(format!(
                "LOCAL_RANK {r} has no GPU of its own: {cuda_devices} CUDA devices visible on \
                 this node (one process per GPU: start at most {cuda_devices} ranks per node, \
                 or bind one GPU per rank with CUDA_VISIBLE_DEVICES)"
            )))
        }
    };
    Ok(Device::Cuda(index))
}

/// `run.dist_backend` against the run's device: auto picks NCCL for CUDA and Gloo for the CPU;
/// an explicit choice that cannot carry the device's tensors is an error naming both keys.
pub fn select_backend(choice: DistBackend, device: Device) -> Result<Backend> {
    match (choice, device) {
        (DistBackend::Auto | DistBackend::Gloo, Device::Cpu) => Ok(Backend::Gloo),
        (DistBackend::Auto | DistBackend::Nccl, Device::Cuda(i)) => Ok(Backend::Nccl { device: i }),
        (DistBackend::Nccl, Device::Cpu) => Err(TrainError::Invalid(
            "run.dist_backend = \"nccl\" needs a CUDA device, but run.device resolved to the CPU \
             (no GPU visible, or run.device = \"cpu\"); use \"gloo\" or \"auto\" on the CPU"
                .into(),
        )),
        (DistBackend::Gloo, Device::Cuda(i)) => Err(TrainError::Invalid(format!(
            "run.dist_backend = \"gloo\" takes CPU tensors, but run.device resolved to cuda:{i}; \
             use \"nccl\" or \"auto\" on GPUs, or run.device = \"cpu\""
        ))),
        (_, other) => Err(TrainError::Invalid(format!(
            "data-parallel training on {other:?} is not supported (CPU with Gloo, CUDA with NCCL)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_the_device() {
        assert_eq!(
            select_backend(DistBackend::Auto, Device::Cpu).unwrap(),
            Backend::Gloo
        );
        assert_eq!(
            select_backend(DistBackend::Auto, Device::Cuda(3)).unwrap(),
            Backend::Nccl { device: 3 }
        );
    }

    #[test]
    fn explicit_backends_on_their_device() {
        assert_eq!(
            select_backend(DistBackend::Gloo, Device::Cpu).unwrap(),
            Backend::Gloo
        );
        assert_eq!(
            select_backend(DistBackend::Nccl, Device::Cuda(0)).unwrap(),
            Backend::Nccl { device: 0 }
        );
    }

    #[test]
    fn a_backend_that_cannot_carry_the_device_is_an_error() {
        let e = select_backend(DistBackend::Nccl, Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"nccl\" needs a CUDA device") && e.contains("CPU"),
            "{e}"
        );
        let e = select_backend(DistBackend::Gloo, Device::Cuda(1))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"gloo\" takes CPU tensors") && e.contains("cuda:1"),
            "{e}"
        );
        assert!(select_backend(DistBackend::Auto, Device::Mps).is_err());
    }

    #[test]
    fn one_gpu_per_rank_is_cuda_local_rank() {
        for r in 0..4 {
            assert_eq!(
                rank_device(DeviceChoice::Auto, Some(r), 4).unwrap(),
                Device::Cuda(r as usize)
            );
            assert_eq!(
                rank_device(DeviceChoice::Cuda, Some(r), 4).unwrap(),
                Device::Cuda(r as usize)
            );
        }
        // Alone: the first GPU.
        assert_eq!(
            rank_device(DeviceChoice::Cuda, None, 8).unwrap(),
            Device::Cuda(0)
        );
    }

    #[test]
    fn one_visible_gpu_per_process_is_cuda_0() {
        assert_eq!(
            rank_device(DeviceChoice::Auto, Some(3), 1).unwrap(),
            Device::Cuda(0)
        );
    }

    #[test]
    fn more_ranks_than_gpus_is_an_error_naming_the_rank() {
        let e = rank_device(DeviceChoice::Auto, Some(2), 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("LOCAL_RANK 2") && e.contains("2 CUDA devices visible"),
            "{e}"
        );
    }

    #[test]
    fn cpu_and_gpu_less_machines() {
        assert_eq!(
            rank_device(DeviceChoice::Cpu, Some(1), 8).unwrap(),
            Device::Cpu
        );
        assert_eq!(
            rank_device(DeviceChoice::Auto, Some(1), 0).unwrap(),
            Device::Cpu
        );
        assert_eq!(
            rank_device(DeviceChoice::Auto, None, 0).unwrap(),
            Device::Cpu
        );
        let e = rank_device(DeviceChoice::Cuda, Some(0), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no CUDA device is available"), "{e}");
    }
}
