//! `flowscale-data`: Dataset readers, image preprocessing, latent shard writer/reader, precompute and the training loader (issue #5).
//!
//! Empty until its issue lands; see docs/architecture.md for what it will hold.
