//! Peak dense bf16 tensor throughput of known GPUs, for model FLOPs utilisation (MFU = achieved
//! training FLOP/s per device over this peak). Figures are the vendors' data-sheet numbers for
//! dense (not sparse) bf16 with fp32 accumulation; `logging.peak_tflops` overrides them (other
//! parts, clocks or precisions).

/// `(substring of the CUDA device name, peak FLOP/s)`, most specific first.
const TABLE: &[(&str, f64)] = &[
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
];

/// The peak FLOP/s of the device named `name` ("NVIDIA H100 80GB HBM3"), if the table knows it.
pub fn peak_flops_of(name: &str) -> Option<f64> {
    TABLE
        .iter()
        .find(|(part, _)| name.contains(part))
        .map(|(_, peak)| *peak)
}

/// The peak per device of a run on `device`: the configured TFLOP/s, else the table's figure
/// for a CUDA device, else none (the CPU has no single figure).
pub fn device_peak_flops(configured_tflops: Option<f64>, device: tch::Device) -> Option<f64> {
    if let Some(t) = configured_tflops {
        return Some(t * 1e12);
    }
    match device {
        tch::Device::Cuda(i) => flowscale_torch_ext::cuda::device_name(i)
            .ok()
            .and_then(|n| peak_flops_of(&n)),
        _ => None,
    }
}

/// MFU: the FLOP/s achieved by all `devices` together over their combined peak.
pub fn mfu(flops_per_s: f64, devices: usize, peak_per_device: f64) -> f64 {
    flops_per_s / (devices.max(1) as f64 * peak_per_device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_their_part_and_overrides_win() {
        assert_eq!(peak_flops_of("NVIDIA H100 80GB HBM3"), Some(989e12));
        assert_eq!(peak_flops_of("NVIDIA H100 PCIe"), Some(756e12));
        assert_eq!(peak_flops_of("NVIDIA H200"), Some(989e12));
        assert_eq!(peak_flops_of("NVIDIA A100-SXM4-80GB"), Some(312e12));
        assert_eq!(peak_flops_of("Some Future GPU"), None);
        assert_eq!(
            device_peak_flops(Some(100.0), tch::Device::Cpu),
            Some(100e12)
        );
        assert_eq!(device_peak_flops(None, tch::Device::Cpu), None);
        // 2 devices at 400 TFLOP/s together against 989 each.
        assert!((mfu(400e12, 2, 989e12) - 400.0 / 1978.0).abs() < 1e-12);
    }
}
