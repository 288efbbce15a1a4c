//! `flowscale-eval`: Validation loss, sampling grids, FID, CLIP score and Pareto ranking (issue #7).
//!
//! Empty until its issue lands; see docs/architecture.md for what it will hold.
