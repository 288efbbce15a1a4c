//! TensorBoard event files, written by our own small encoder.
//!
//! Why in-house: the `tensorboard-rs` crate was last released in 2022 and pulls the old protobuf
//! 2.x line; the format is small and stable. A file is a sequence of TFRecords (u64 length,
//! masked CRC-32C of the length, the bytes, masked CRC-32C of the bytes), each an `Event`
//! protobuf (tensorboard/compat/proto/event.proto, summary.proto). The first record carries
//! `file_version = "brain.Event:2"`. [`reader`] decodes the same subset for tests and tools;
//! `scripts/check_tensorboard.py` checks files with TensorBoard's own loader.

mod proto;
pub mod reader;
mod record;
mod writer;

pub use reader::{read_events, Event, EventValue};
pub use writer::EventWriter;
