use flowscale_torch_ext::{build_info, cuda, numerics};

#[test]
fn build_info_reports_the_pinned_libtorch() {
    assert_eq!(build_info::torch_version().unwrap(), "2.11.0");
    let path = build_info::libtorch_path().unwrap();
    assert!(path.ends_with("libtorch_cpu.so"), "{path}");
    assert!(std::path::Path::new(&path).exists(), "{path}");
    assert!(build_info::build_config()
        .unwrap()
        .contains("PyTorch built with"));
}

#[test]
fn device_count_agrees_with_tch() {
    assert_eq!(
        cuda::device_count().unwrap(),
        tch::Cuda::device_count() as usize
    );
}

#[test]
fn memory_stats_of_a_missing_device_is_an_error_naming_it() {
    let missing = cuda::device_count().unwrap() + 3;
    let err = cuda::memory_stats(missing).unwrap_err().to_string();
    assert!(err.contains(&format!("CUDA device {missing}")), "{err}");
    assert!(cuda::device_name(missing).is_err());
    let err = cuda::device_total_memory(missing).unwrap_err().to_string();
    assert!(err.contains(&format!("CUDA device {missing}")), "{err}");
    cuda::empty_cache().unwrap();
}

#[test]
fn numerics_switches_round_trip() {
    // One test owns the process-wide flags, so parallel tests do not race on them.
    numerics::set_deterministic_algorithms(true, false).unwrap();
    assert!(numerics::deterministic_algorithms().unwrap());
    numerics::set_deterministic_algorithms(false, false).unwrap();
    assert!(!numerics::deterministic_algorithms().unwrap());
    for (matmul, cudnn) in [(true, false), (false, true), (false, false)] {
        let want = numerics::Tf32 { matmul, cudnn };
        numerics::set_allow_tf32(want).unwrap();
        assert_eq!(numerics::allow_tf32().unwrap(), want);
    }
}

#[cfg(feature = "cuda-tests")]
#[test]
fn cuda_memory_stats_track_an_allocation() {
    use tch::{Device, Kind, Tensor};
    assert!(
        cuda::device_count().unwrap() > 0,
        "cuda-tests needs a CUDA device"
    );
    assert!(!cuda::device_name(0).unwrap().is_empty());
    // Every CUDA device has at least 1 GiB; a wrong symbol or unit would give 0 or bytes/1024.
    assert!(cuda::device_total_memory(0).unwrap() >= 1 << 30);
    cuda::reset_peak_memory_stats(0).unwrap();
    let before = cuda::memory_stats(0).unwrap();
    let bytes: u64 = 64 << 20;
    let t = Tensor::zeros([(bytes / 4) as i64], (Kind::Float, Device::Cuda(0)));
    let during = cuda::memory_stats(0).unwrap();
    assert!(
        during.allocated >= before.allocated + bytes,
        "{before:?} {during:?}"
    );
    assert!(during.reserved >= during.allocated);
    assert!(during.peak_allocated >= during.allocated);
    drop(t);
    let after = cuda::memory_stats(0).unwrap();
    assert!(
        after.allocated + bytes <= during.allocated,
        "{during:?} {after:?}"
    );
    assert!(
        after.peak_allocated >= during.allocated,
        "peak kept after free"
    );
    cuda::reset_peak_memory_stats(0).unwrap();
    assert!(cuda::memory_stats(0).unwrap().peak_allocated < during.allocated);
}
