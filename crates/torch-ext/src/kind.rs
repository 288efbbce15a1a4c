//! tch keeps its `Kind` <-> `c10::ScalarType` mapping private; the shim needs the numbers.

use tch::{Device, Kind};

use crate::{Result, TorchExtError};

/// `c10::ScalarType` value of the floating kinds autocast can use (c10/core/ScalarType.h).
pub fn scalar_type(call: &'static str, kind: Kind) -> Result<i32> {
    match kind {
        Kind::Half => Ok(5),
        Kind::Float => Ok(6),
        Kind::Double => Ok(7),
        Kind::BFloat16 => Ok(15),
        other => Err(TorchExtError::Argument {
            call,
            message: format!("{other:?} is not a floating autocast dtype (use BFloat16 or Half)"),
        }),
    }
}

pub fn kind_of_scalar_type(call: &'static str, value: i32) -> Result<Kind> {
    match value {
        5 => Ok(Kind::Half),
        6 => Ok(Kind::Float),
        7 => Ok(Kind::Double),
        15 => Ok(Kind::BFloat16),
        other => Err(TorchExtError::Argument {
            call,
            message: format!("unexpected c10::ScalarType {other}"),
        }),
    }
}

/// `c10::DeviceType` of a tch device: 0 = CPU, 1 = CUDA.
pub fn device_type(call: &'static str, device: Device) -> Result<i32> {
    match device {
        Device::Cpu => Ok(0),
        Device::Cuda(_) => Ok(1),
        other => Err(TorchExtError::Argument {
            call,
            message: format!("autocast is supported on CPU and CUDA, not {other:?}"),
        }),
    }
}
