//! Autocast with a chosen dtype on CPU or CUDA.
//!
//! `tch::autocast` only toggles CUDA autocast, whose dtype defaults to fp16. Mixed-precision
//! training in flowscale is bf16: call [`set_autocast_dtype`]`(Device::Cuda(0), Kind::BFloat16)`
//! once and `tch::autocast` runs in bf16, or use [`with_autocast`], which also works on CPU
//! (whose autocast dtype defaults to bf16) and restores the previous state when it returns.

use std::ffi::c_int;

use tch::{Device, Kind};

use crate::ffi;
use crate::kind::{device_type, kind_of_scalar_type, scalar_type};
use crate::Result;

/// Set the dtype autocast casts to on `device`'s type (all devices of that type).
pub fn set_autocast_dtype(device: Device, kind: Kind) -> Result<()> {
    const CALL: &str = "set_autocast_dtype";
    let dt = device_type(CALL, device)?;
    let st = scalar_type(CALL, kind)?;
    // SAFETY: plain values in, error string out.
    unsafe { ffi::check(CALL, ffi::fx_autocast_set_dtype(dt, st)) }
}

/// The dtype autocast casts to on `device`'s type.
pub fn autocast_dtype(device: Device) -> Result<Kind> {
    const CALL: &str = "autocast_dtype";
    let dt = device_type(CALL, device)?;
    let mut out: c_int = 0;
    // SAFETY: `out` is a valid pointer for the duration of the call.
    unsafe { ffi::check(CALL, ffi::fx_autocast_get_dtype(dt, &mut out))? };
    kind_of_scalar_type(CALL, out)
}

/// Whether autocast is currently enabled for `device`'s type.
pub fn is_autocast_enabled(device: Device) -> Result<bool> {
    const CALL: &str = "is_autocast_enabled";
    let dt = device_type(CALL, device)?;
    let mut out: c_int = 0;
    // SAFETY: `out` is a valid pointer for the duration of the call.
    unsafe { ffi::check(CALL, ffi::fx_autocast_is_enabled(dt, &mut out))? };
    Ok(out != 0)
}

fn set_enabled(device_type: c_int, enabled: bool) -> Result<()> {
    // SAFETY: plain values in, error string out.
    unsafe {
        ffi::check(
            "autocast_set_enabled",
            ffi::fx_autocast_set_enabled(device_type, c_int::from(enabled)),
        )
    }
}

/// Restores the autocast state of one device type when dropped, also during a panic.
struct AutocastGuard {
    device_type: c_int,
    prev_enabled: bool,
    prev_dtype: c_int,
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        let mut nesting = 0i64;
        // SAFETY: plain values and a valid out-pointer. Errors cannot be returned from drop;
        // these calls only fail on an unsupported device type, which `with_autocast` rejected.
        unsafe {
            let _ = ffi::check(
                "autocast_exit",
                ffi::fx_autocast_decrement_nesting(&mut nesting),
            );
            if nesting == 0 {
                // Leaving the outermost region: drop the cached casts of weights, as torch does.
                let _ = ffi::check("autocast_exit", ffi::fx_autocast_clear_cache());
            }
            let _ = ffi::check(
                "autocast_exit",
                ffi::fx_autocast_set_dtype(self.device_type, self.prev_dtype),
            );
        }
        let _ = set_enabled(self.device_type, self.prev_enabled);
    }
}

/// Run `f` with autocast enabled on `device`'s type, casting eligible ops to `kind`
/// (`Kind::BFloat16` for flowscale's mixed precision). The previous state is restored afterwards.
pub fn with_autocast<T>(device: Device, kind: Kind, f: impl FnOnce() -> T) -> Result<T> {
    autocast_region("with_autocast", device, Some(kind), f)
}

/// Run `f` with autocast disabled on `device`'s type (`torch.autocast(..., enabled=False)`):
/// a region that needs fp32 products inside a bf16 forward. The previous state, enabled or
/// not, is restored afterwards.
pub fn without_autocast<T>(device: Device, f: impl FnOnce() -> T) -> Result<T> {
    autocast_region("without_autocast", device, None, f)
}

/// Autocast on `device`'s type enabled with `kind` (`Some`) or disabled (`None`) while `f`
/// runs. Both count as a nesting level, as torch's context manager does, so leaving the
/// outermost region clears the cache of cast weights and an inner one does not.
fn autocast_region<T>(
    call: &'static str,
    device: Device,
    kind: Option<Kind>,
    f: impl FnOnce() -> T,
) -> Result<T> {
    let dt = device_type(call, device)?;
    let prev_enabled = is_autocast_enabled(device)?;
    let prev_dtype = scalar_type(call, autocast_dtype(device)?)?;
    let mut nesting = 0i64;
    // SAFETY: plain values and a valid out-pointer.
    unsafe {
        if let Some(kind) = kind {
            ffi::check(
                call,
                ffi::fx_autocast_set_dtype(dt, scalar_type(call, kind)?),
            )?;
        }
        ffi::check(call, ffi::fx_autocast_increment_nesting(&mut nesting))?;
    }
    let _guard = AutocastGuard {
        device_type: dt,
        prev_enabled,
        prev_dtype,
    };
    set_enabled(dt, kind.is_some())?;
    Ok(f())
}
