//! Correlation coefficients across runs (validation loss against FID, CLIP score or class
//! accuracy: the paper's claim that validation loss predicts sample quality).
//!
//! Pearson's r on the values and Spearman's rho = Pearson's r on the ranks, ties taking their
//! average rank (scipy.stats' conventions).

/// Pearson's correlation coefficient; `None` for fewer than 3 pairs, unequal lengths,
/// non-finite values, or a constant input.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 3 || x.iter().chain(y).any(|v| !v.is_finite()) {
        return None;
    }
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// Ranks 1..n with ties given their average rank.
fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's rank correlation coefficient.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.iter().chain(y).any(|v| !v.is_finite()) {
        return None;
    }
    pearson(&average_ranks(x), &average_ranks(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from scipy 1.17.1 (`scipy.stats.pearsonr`, `spearmanr`), numpy 2.4.6.
    #[test]
    fn matches_scipy() {
        let x = [0.41, 0.39, 0.44, 0.38, 0.47, 0.40];
        let y = [31.0, 29.5, 36.0, 30.1, 41.2, 28.0];
        assert!((pearson(&x, &y).unwrap() - 0.9432764285693654).abs() < 1e-12);
        assert!((spearman(&x, &y).unwrap() - 0.7714285714285715).abs() < 1e-12);
        // With ties.
        let x = [1.0, 2.0, 2.0, 3.0, 4.0];
        let y = [10.0, 20.0, 20.0, 25.0, 24.0];
        assert!((pearson(&x, &y).unwrap() - 0.8647943791340331).abs() < 1e-12);
        assert!((spearman(&x, &y).unwrap() - 0.8947368421052632).abs() < 1e-12);
    }

    #[test]
    fn signs_ties_and_degenerate_inputs() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(pearson(&x, &[8.0, 6.0, 4.0, 2.0]), Some(-1.0));
        assert_eq!(spearman(&x, &[1.0, 10.0, 100.0, 1000.0]), Some(1.0));
        assert_eq!(
            average_ranks(&[3.0, 1.0, 3.0, 2.0]),
            vec![3.5, 1.0, 3.5, 2.0]
        );
        assert_eq!(pearson(&x, &[1.0, 1.0, 1.0, 1.0]), None);
        assert_eq!(pearson(&[1.0, 2.0], &[1.0, 2.0]), None);
        assert_eq!(pearson(&x, &[1.0, f64::NAN, 1.0, 2.0]), None);
    }
}
