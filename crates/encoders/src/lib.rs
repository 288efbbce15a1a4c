//! `flowscale-encoders`: Frozen networks: autoencoders, text encoders with tokenizers, metric networks (issues #5, #6, #7).
//!
//! Empty until its issue lands; see docs/architecture.md for what it will hold.
