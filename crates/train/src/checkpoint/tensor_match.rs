//! The one check of stored tensors against the tensors they are loaded into (model weights,
//! EMAs, optimiser moments): every expected name present (unless optional), nothing else, and
//! each with the expected shape and dtype. A dtype check matters as much as a shape check: a
//! tensor declared with another dtype of the same size loads into garbage values without one.

use flowscale_models::KeyReport;
use std::collections::{HashMap, HashSet};
use tch::Tensor;

/// Every problem of `found` against `expects` (names with their tensors), or `None` when it
/// matches. Names in `optional` may be absent.
pub fn mismatch(
    expects: &[(String, Tensor)],
    optional: &HashSet<String>,
    found: &HashMap<String, Tensor>,
) -> Option<String> {
    let report = KeyReport::compare(
        expects.iter().map(|(k, t)| (k.as_str(), t.size())),
        optional,
        found,
    );
    let mut problems: Vec<String> = report
        .missing
        .iter()
        .map(|k| format!("missing {k}"))
        .chain(report.unexpected.iter().map(|k| format!("unexpected {k}")))
        .chain(
            report
                .mis_shaped
                .iter()
                .map(|(k, want, got)| format!("{k}: shape {got:?}, expected {want:?}")),
        )
        .chain(expects.iter().filter_map(|(k, t)| {
            let f = found.get(k)?;
            (f.kind() != t.kind())
                .then(|| format!("{k}: dtype {:?}, expected {:?}", f.kind(), t.kind()))
        }))
        .collect();
    problems.sort();
    (!problems.is_empty()).then(|| problems.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn names_missing_unexpected_mis_shaped_and_wrongly_typed_tensors() {
        let z = |shape: &[i64], kind| Tensor::zeros(shape, (kind, Device::Cpu));
        let expects = vec![
            ("a".to_string(), z(&[2], Kind::Float)),
            ("b".to_string(), z(&[2, 2], Kind::Float)),
            ("c".to_string(), z(&[3], Kind::Float)),
            ("opt".to_string(), z(&[1], Kind::Float)),
        ];
        let optional: HashSet<String> = ["opt".to_string()].into();
        let ok: HashMap<String, Tensor> = expects
            .iter()
            .filter(|(k, _)| k != "opt")
            .map(|(k, t)| (k.clone(), t.zeros_like()))
            .collect();
        assert_eq!(mismatch(&expects, &optional, &ok), None);
        let found: HashMap<String, Tensor> = [
            ("b".to_string(), z(&[4], Kind::Float)),
            ("c".to_string(), z(&[3], Kind::Int)),
            ("x".to_string(), z(&[1], Kind::Float)),
        ]
        .into();
        let m = mismatch(&expects, &optional, &found).unwrap();
        for part in [
            "missing a",
            "unexpected x",
            "b: shape [4], expected [2, 2]",
            "c: dtype Int, expected Float",
        ] {
            assert!(m.contains(part), "{part} not in {m}");
        }
        assert!(!m.contains("opt"), "{m}");
    }
}
