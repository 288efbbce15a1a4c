//! `flowscale-study`: Sweeps, result aggregation, power-law fits, plots and reports (issue #9).
//!
//! Empty until its issue lands; see docs/architecture.md for what it will hold.
