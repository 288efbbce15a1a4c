//! `flowscale-core`: what every other flowscale crate shares and nothing flowscale-specific
//! depends on: files that appear whole or not at all ([`atomic`]), the seeded host generator
//! ([`FlowRng`]), seeded draws from torch's generator ([`with_torch_seed`]), the config
//! dialect ([`config`]) and the host allocator's settings ([`host_allocator`]).

pub mod atomic;
pub mod config;
pub mod host_allocator;
pub mod lock;
pub mod rng;
pub mod torch_seed;

pub use atomic::{write_atomic, AtomicFile, IoError};
pub use lock::{DirLock, LockError};
pub use rng::FlowRng;
pub use torch_seed::with_torch_seed;
