use flowscale_torch_ext::autocast::{
    autocast_dtype, is_autocast_enabled, set_autocast_dtype, with_autocast, without_autocast,
};
use tch::{Device, Kind, Tensor};

#[test]
fn cuda_autocast_dtype_setting_is_observable_without_a_gpu() {
    // Autocast state is per thread in ATen; each test runs on its own thread.
    let before = autocast_dtype(Device::Cuda(0)).unwrap();
    assert_eq!(
        before,
        Kind::Half,
        "libtorch's CUDA autocast default is fp16"
    );
    set_autocast_dtype(Device::Cuda(0), Kind::BFloat16).unwrap();
    assert_eq!(autocast_dtype(Device::Cuda(0)).unwrap(), Kind::BFloat16);
    set_autocast_dtype(Device::Cuda(0), Kind::Half).unwrap();
    assert_eq!(autocast_dtype(Device::Cuda(0)).unwrap(), Kind::Half);
}

#[test]
fn non_float_autocast_dtype_is_rejected_by_name() {
    let err = set_autocast_dtype(Device::Cpu, Kind::Int64).unwrap_err();
    assert!(err.to_string().contains("Int64"), "{err}");
}

#[test]
fn cpu_matmul_under_autocast_is_bf16_and_state_is_restored() {
    let a = Tensor::randn([8, 16], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([16, 4], (Kind::Float, Device::Cpu));
    assert!(!is_autocast_enabled(Device::Cpu).unwrap());
    let out = with_autocast(Device::Cpu, Kind::BFloat16, || {
        assert!(is_autocast_enabled(Device::Cpu).unwrap());
        a.matmul(&b)
    })
    .unwrap();
    assert_eq!(out.kind(), Kind::BFloat16);
    // Outside the region the same op runs in fp32 again.
    assert!(!is_autocast_enabled(Device::Cpu).unwrap());
    assert_eq!(a.matmul(&b).kind(), Kind::Float);
    // The bf16 result is the fp32 product to bf16 precision.
    let diff = (out.to_kind(Kind::Float) - a.matmul(&b)).abs().max();
    assert!(
        diff.double_value(&[]) < 0.1,
        "bf16 matmul far from fp32: {diff}"
    );
}

#[test]
fn nested_autocast_restores_the_outer_dtype() {
    with_autocast(Device::Cpu, Kind::BFloat16, || {
        with_autocast(Device::Cpu, Kind::Half, || {
            assert_eq!(autocast_dtype(Device::Cpu).unwrap(), Kind::Half);
        })
        .unwrap();
        assert_eq!(autocast_dtype(Device::Cpu).unwrap(), Kind::BFloat16);
        assert!(is_autocast_enabled(Device::Cpu).unwrap());
    })
    .unwrap();
    assert!(!is_autocast_enabled(Device::Cpu).unwrap());
}

#[test]
fn a_region_without_autocast_computes_in_fp32_and_reenables_on_exit() {
    let a = Tensor::randn([8, 16], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([16, 4], (Kind::Float, Device::Cpu));
    with_autocast(Device::Cpu, Kind::BFloat16, || {
        let inner = without_autocast(Device::Cpu, || {
            assert!(!is_autocast_enabled(Device::Cpu).unwrap());
            a.matmul(&b)
        })
        .unwrap();
        assert_eq!(inner.kind(), Kind::Float);
        // Back in the bf16 region, with its dtype.
        assert!(is_autocast_enabled(Device::Cpu).unwrap());
        assert_eq!(autocast_dtype(Device::Cpu).unwrap(), Kind::BFloat16);
        assert_eq!(a.matmul(&b).kind(), Kind::BFloat16);
    })
    .unwrap();
    assert!(!is_autocast_enabled(Device::Cpu).unwrap());
    // Outside any region it leaves autocast off.
    without_autocast(Device::Cpu, || ()).unwrap();
    assert!(!is_autocast_enabled(Device::Cpu).unwrap());
}

#[cfg(feature = "cuda-tests")]
#[test]
fn cuda_matmul_under_tch_autocast_is_bf16_once_the_dtype_is_set() {
    assert!(tch::Cuda::is_available(), "cuda-tests needs a CUDA device");
    let dev = Device::Cuda(0);
    let a = Tensor::randn([64, 64], (Kind::Float, dev));
    let b = Tensor::randn([64, 64], (Kind::Float, dev));
    assert_eq!(tch::autocast(true, || a.matmul(&b)).kind(), Kind::Half);
    set_autocast_dtype(dev, Kind::BFloat16).unwrap();
    assert_eq!(tch::autocast(true, || a.matmul(&b)).kind(), Kind::BFloat16);
    let out = with_autocast(dev, Kind::BFloat16, || a.matmul(&b)).unwrap();
    assert_eq!(out.kind(), Kind::BFloat16);
    assert_eq!(a.matmul(&b).kind(), Kind::Float);
}
