//! `flowscale-formulations`: Noise formulations: paths, timestep samplers, parameterisations, loss weights, shift, ODE samplers, CFG and the registry of the 61 named formulations of the SD3 study (issue #3).
//!
//! Empty until its issue lands; see docs/architecture.md for what it will hold.
