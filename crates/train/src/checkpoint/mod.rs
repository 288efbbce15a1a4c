//! Checkpoints of a run: `checkpoints/step-XXXXXXXXX/` holding one safetensors file per tensor
//! group (`model`, `ema-<decay>`, `optimizer`) and `state.json`.
//!
//! Crash safety: a checkpoint is written into `.tmp-step-XXXXXXXXX/`, every file is synced, and
//! the folder is renamed into place (atomic on POSIX file systems), so a killed process or a full
//! disk leaves at most a temporary folder that [`CheckpointStore::latest`] ignores and the next
//! save removes. `state.json` is written last, so a folder without it is never considered.
//! Every other file's length and CRC-32C are recorded in `checksums.json` and checked at load.

pub mod checksums;
mod store;
pub mod tensor_match;

pub use store::{group_file_name, write_group, CheckpointStore, LoadedCheckpoint, STATE_FILE};
