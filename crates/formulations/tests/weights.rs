//! Effective weights from the recipe `-2 p(t) c(t) / lambda'(t)` against the closed forms of
//! docs/protocol.md section 2. The closed forms are written here independently of the crate.

use flowscale_formulations::analysis::table;
use flowscale_formulations::special::normal_pdf;
use flowscale_formulations::{registry, write_csv, Formulation};
use std::f64::consts::PI;

fn rows(f: Formulation) -> Vec<(f64, f64, f64)> {
    table(f, 400, None)
        .into_iter()
        .map(|r| (r.t, r.lambda, r.weight))
        .collect()
}

/// Asserts `weight / closed_form` equals `constant` at every row.
fn assert_ratio(f: Formulation, constant: f64, closed: impl Fn(f64, f64) -> f64) {
    for (t, lambda, w) in rows(f) {
        let ratio = w / closed(t, lambda);
        assert!(
            (ratio / constant - 1.0).abs() < 1e-6,
            "{f} at t = {t}: ratio {ratio}, expected {constant}"
        );
    }
}

#[test]
fn rf_weight_is_t_over_one_minus_t_times_pi() {
    type Density = fn(f64) -> f64;
    let cases: [(Formulation, Density); 4] = [
        (Formulation::Rf, |_| 1.0),
        (
            Formulation::RfLogNorm {
                mean: 0.5,
                std: 0.6,
            },
            |t| normal_pdf((t / (1.0 - t)).ln(), 0.5, 0.6) / (t * (1.0 - t)),
        ),
        (Formulation::RfCosMap, |t| {
            2.0 / (PI * (1.0 - 2.0 * t + 2.0 * t * t))
        }),
        (Formulation::RfMode { scale: 0.0 }, |_| 1.0),
    ];
    for (f, pi) in cases {
        assert_ratio(f, 1.0, |t, _| t / (1.0 - t) * pi(t));
    }
}

#[test]
fn cosine_weights_are_sech_and_exp() {
    // eps/cos: w = sin(pi t)/pi = sech(lambda/2)/pi; v/cos: w = 2 tan(pi t/2)/pi = (2/pi) exp(-lambda/2).
    assert_ratio(Formulation::EpsCos, 1.0 / PI, |_, l| 1.0 / (l / 2.0).cosh());
    assert_ratio(Formulation::VCos, 2.0 / PI, |_, l| (-l / 2.0).exp());
}

#[test]
fn linear_weights_are_the_lambda_density() {
    // eps/linear: w = 2 p_lambda(lambda) under uniform t; v/linear: that times (1 + exp(-lambda)).
    // p_lambda from a numerical derivative of the path's lambda (independent of dlambda_dt).
    let path = Formulation::EpsLinear.path();
    let p_lambda = |t: f64| {
        let h = 1e-7;
        h * 2.0 / (path.lambda(t - h) - path.lambda(t + h))
    };
    assert_ratio(Formulation::EpsLinear, 2.0, |t, _| p_lambda(t));
    assert_ratio(Formulation::VLinear, 2.0, |t, l| {
        p_lambda(t) * (1.0 + (-l).exp())
    });
}

#[test]
fn edm_weight_is_gaussian_in_lambda_times_exp_plus_sd2() {
    // w = (2/sd^2) N(lambda; -2 P_m, (2 P_s)^2) (exp(-lambda) + sd^2), sd = 0.5: constant 8.
    for (pm, ps) in [(-1.2, 0.6), (0.0, 1.2), (1.2, 1.8)] {
        assert_ratio(
            Formulation::Edm {
                p_mean: pm,
                p_std: ps,
            },
            8.0,
            |_, l| normal_pdf(l, -2.0 * pm, 2.0 * ps) * ((-l).exp() + 0.25),
        );
    }
    // edm/rf and edm/cos: the lambda density of rf (t(1-t)/2) resp. of the cosine schedule.
    assert_ratio(Formulation::EdmRf, 8.0, |t, l| {
        t * (1.0 - t) / 2.0 * ((-l).exp() + 0.25)
    });
    assert_ratio(Formulation::EdmCos, 8.0, |_, l| {
        // lambda = -2 ln tan(pi u/2), u ~ U: p(lambda) = 1/(2 pi cosh(lambda/2)).
        1.0 / (2.0 * PI * (l / 2.0).cosh()) * ((-l).exp() + 0.25)
    });
}

#[test]
fn table_csv_has_the_header_and_one_line_per_row() {
    let f = Formulation::parse("rf/lognorm(0.00, 1.00)").unwrap();
    let mut buf = Vec::new();
    write_csv(&table(f, 10, None), &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "t,a,b,lambda,density,weight");
    assert_eq!(lines.len(), 11);
    assert_eq!(lines[1].split(',').count(), 6);
    for f in registry() {
        assert!(
            table(f, 50, None)
                .iter()
                .all(|r| r.weight.is_finite() && r.weight >= 0.0),
            "{f}"
        );
    }
}

#[test]
fn shifted_table_density_integrates_to_one() {
    let s = flowscale_formulations::Shift::new(3.0).unwrap();
    for f in [
        Formulation::Rf,
        Formulation::EpsCos,
        Formulation::RfLogNorm {
            mean: 0.0,
            std: 1.0,
        },
    ] {
        let rows = table(f, 20_000, Some(s));
        let integral: f64 = rows.iter().map(|r| r.density).sum::<f64>() / rows.len() as f64;
        assert!((integral - 1.0).abs() < 2e-3, "{f}: {integral}");
    }
}
