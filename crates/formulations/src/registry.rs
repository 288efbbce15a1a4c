//! The 61 formulations of the study, in the order of docs/protocol.md section 3.

use crate::formulation::Formulation;

/// The mode scales of the study: 7 values uniform in [-1, 1.75] (exactly -1 + k·2.75/6), then 1.0.
pub fn mode_scales() -> Vec<f64> {
    let mut s: Vec<f64> = (0..7).map(|k| -1.0 + k as f64 * 2.75 / 6.0).collect();
    s.push(1.0);
    s
}

/// All 61 formulations with exact parameters, in the reference's order.
pub fn registry() -> Vec<Formulation> {
    use Formulation as F;
    let mut v = vec![F::EpsLinear, F::EpsCos, F::VLinear, F::VCos];
    v.extend(mode_scales().into_iter().map(|scale| F::RfMode { scale }));
    v.push(F::Rf);
    for mean in [-1.0, -0.5, 0.0, 0.5, 1.0] {
        for std in [0.2, 0.6, 1.0, 1.4, 1.8, 2.2] {
            v.push(F::RfLogNorm { mean, std });
        }
    }
    v.push(F::RfCosMap);
    for p_mean in [-1.2, -0.6, 0.0, 0.6, 1.2] {
        for p_std in [0.6, 1.2, 1.8] {
            v.push(F::Edm { p_mean, p_std });
        }
    }
    v.push(F::EdmRf);
    v.push(F::EdmCos);
    v
}
