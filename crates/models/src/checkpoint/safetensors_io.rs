//! Memory-mapped safetensors reading with dtype conversion, and atomic writing.

use crate::error::{ModelError, Result};
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Tensors (in file order) and the `__metadata__` map of one safetensors file.
pub struct FileContents {
    pub tensors: Vec<(String, Tensor)>,
    pub metadata: HashMap<String, String>,
}

/// What a safetensors error means, in words: the crate's own `Display` prints its variant
/// names (`MetadataIncompleteBuffer`).
fn describe(e: &SafeTensorError) -> String {
    use SafeTensorError as E;
    match e {
        E::InvalidHeader => "the header is not UTF-8".into(),
        E::InvalidHeaderStart => "the header does not start with '{'".into(),
        E::InvalidHeaderDeserialization => "the header is not valid JSON".into(),
        E::HeaderTooLarge => "the header is larger than 100 MB".into(),
        E::HeaderTooSmall => "the file is shorter than the 8-byte header length".into(),
        E::InvalidHeaderLength => "the header length is larger than the file".into(),
        E::TensorNotFound(n) => format!("no tensor {n:?}"),
        E::TensorInvalidInfo => "a tensor's shape and dtype do not match its byte range".into(),
        E::InvalidOffset(n) => format!("tensor {n:?} has byte offsets outside the data"),
        E::IoError(io) => format!("I/O error: {io}"),
        E::JsonError(j) => format!("header JSON: {j}"),
        E::InvalidTensorView(dtype, shape, bytes) => {
            format!("a {dtype:?} tensor of shape {shape:?} cannot hold {bytes} bytes")
        }
        E::MetadataIncompleteBuffer => {
            "the tensors' byte ranges do not cover the data exactly (truncated or padded file)"
                .into()
        }
        E::ValidationOverflow => "a tensor's size overflows (a corrupt header)".into(),
    }
}

/// Reads every tensor of `path` through a read-only memory map, converting floating tensors to
/// `kind` on `device`; integer buffers (int64/int32, e.g. text encoders' `position_ids`) keep
/// their type.
pub fn read(path: &Path, kind: Kind, device: Device) -> Result<FileContents> {
    let file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    // SAFETY: the map is read-only and dropped before returning; a concurrent writer could only
    // corrupt the values read, which the format's length checks bound.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
    let st = SafeTensors::deserialize(&map).map_err(|e| {
        ModelError::format(
            path,
            format!("not a valid safetensors file: {}", describe(&e)),
        )
    })?;
    let (_, meta) = SafeTensors::read_metadata(&map).map_err(|e| {
        ModelError::format(path, format!("bad safetensors header: {}", describe(&e)))
    })?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let mut names: Vec<(usize, String)> = meta
        .tensors()
        .iter()
        .map(|(name, info)| (info.data_offsets.0, name.clone()))
        .collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for (_, name) in names {
        let view = st
            .tensor(&name)
            .map_err(|e| ModelError::format(path, format!("tensor {name}: {}", describe(&e))))?;
        let (src_kind, floating) = match view.dtype() {
            Dtype::F64 => (Kind::Double, true),
            Dtype::F32 => (Kind::Float, true),
            Dtype::F16 => (Kind::Half, true),
            Dtype::BF16 => (Kind::BFloat16, true),
            Dtype::I64 => (Kind::Int64, false),
            Dtype::I32 => (Kind::Int, false),
            other => {
                return Err(ModelError::format(
                    path,
                    format!("tensor {name} has unsupported dtype {other:?}"),
                ))
            }
        };
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let mut t = Tensor::f_from_data_size(view.data(), &shape, src_kind)?.f_to_device(device)?;
        if floating {
            t = t.f_to_kind(kind)?;
        }
        tensors.push((name, t));
    }
    Ok(FileContents { tensors, metadata })
}

struct CpuView {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &CpuView {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn to_view(t: &Tensor) -> Result<CpuView> {
    let t = t.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?;
    let dtype = match t.kind() {
        Kind::Double => Dtype::F64,
        Kind::Float => Dtype::F32,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        k => {
            return Err(ModelError::Input(format!(
                "cannot save tensors of kind {k:?}"
            )))
        }
    };
    let numel = t.numel();
    let mut bytes = vec![0u8; numel * t.kind().elt_size_in_bytes()];
    t.f_copy_data_u8(&mut bytes, numel)?;
    Ok(CpuView {
        dtype,
        shape: t.size().iter().map(|&d| d as usize).collect(),
        bytes,
    })
}

/// Writes `tensors` to `path` atomically (`flowscale_core::atomic`: a temporary name unique to
/// the writer, synced, renamed), so a reader never sees a partial file.
pub fn write(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    use flowscale_core::atomic::{write_atomic_with, AtomicWithError};
    let views = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), to_view(t)?)))
        .collect::<Result<Vec<_>>>()?;
    write_atomic_with(path, |tmp| {
        safetensors::tensor::serialize_to_file(
            views.iter().map(|(n, v)| (n.as_str(), v)),
            &metadata,
            tmp,
        )
        .map_err(|e| ModelError::format(tmp, format!("writing: {}", describe(&e))))
    })
    .map_err(AtomicWithError::into_error)
}

/// Writes bytes to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(flowscale_core::write_atomic(path, bytes)?)
}
