//! `flowscale-models`: Backbones (MMDiT), checkpoint layouts and key maps, FLOP accounting (issue #4).
//!
//! Empty until its issue lands; see docs/architecture.md for what it will hold.
