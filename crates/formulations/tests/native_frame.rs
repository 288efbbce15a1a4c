//! The native sampler frame (docs/protocol.md section 7): each formulation's own ODE in its own
//! time on its own schedule, against the analytic Gaussian case, the RF frame and the step
//! convention.

mod common;

use common::{column_mean_std, optimal_network};
use flowscale_formulations::{
    native_schedule, registry, sample, sample_native, uniform_schedule, Formulation,
    FormulationError, Path, SamplerFrame, SamplerMethod, EDM_SIGMA_MAX, EDM_SIGMA_MIN,
};
use std::cell::RefCell;
use tch::{Device, Kind, Tensor};

const MU: [f64; 3] = [0.3, -0.8, 1.5];
const STD: [f64; 3] = [0.5, 1.3, 0.2];

fn noise(n: i64) -> Tensor {
    tch::manual_seed(42);
    Tensor::randn([n, 3], (Kind::Double, Device::Cpu))
}

type Net = Box<dyn Fn(&Tensor, &Tensor) -> Result<Tensor, FormulationError>>;

/// The exact network of `f` for the Gaussian data, as a fallible model.
fn network(f: Formulation) -> Net {
    let net = optimal_network(f, MU.to_vec(), STD.to_vec());
    Box::new(move |z, t| Ok(net(z, t)))
}

/// `(a, b)` of the native latent at native ODE time `tau` (sigma on the EDM path).
fn native_coefficients(f: Formulation, tau: f64) -> (f64, f64) {
    match f.path() {
        Path::VarianceExploding => (1.0, tau),
        path => path.coefficients(tau),
    }
}

/// The exact probability-flow map of the Gaussian data from the native start to the native end
/// of `times`, applied to the same noise: per dimension the flow is affine, taking the start
/// latent `c n` (c = sigma_0 on the EDM path, else 1) at (a0, b0) to
/// `ae mu + sqrt(ae^2 s^2 + be^2) (c n - a0 mu)/sqrt(a0^2 s^2 + b0^2)` at (ae, be). It differs from
/// the data `mu + s n` only by where the frame starts (the LDM schedule's a(1) ≈ 0.068, EDM's
/// finite sigma_max) and ends (the LDM schedule's level 0).
fn exact_native_flow(f: Formulation, times: &[f64], n: &Tensor) -> Tensor {
    let (a0, b0) = native_coefficients(f, times[0]);
    let (ae, be) = native_coefficients(f, *times.last().unwrap());
    let c = match f.path() {
        Path::VarianceExploding => times[0],
        _ => 1.0,
    };
    let (mut p, mut q) = ([0.0; 3], [0.0; 3]);
    for d in 0..3 {
        let r = (ae * ae * STD[d] * STD[d] + be * be).sqrt()
            / (a0 * a0 * STD[d] * STD[d] + b0 * b0).sqrt();
        p[d] = r * c;
        q[d] = ae * MU[d] - r * a0 * MU[d];
    }
    n * Tensor::from_slice(&p).view([1, 3]) + Tensor::from_slice(&q).view([1, 3])
}

/// Worst |mean - ref| / s and |std - ref| / s over the dimensions.
fn relative_stat_errors(x: &Tensor, reference: &Tensor) -> (f64, f64) {
    let (m, s) = column_mean_std(x);
    let (rm, rs) = column_mean_std(reference);
    (0..3).fold((0.0, 0.0), |(em, es), d| {
        (
            f64::max(em, (m[d] - rm[d]).abs() / STD[d]),
            f64::max(es, (s[d] - rs[d]).abs() / STD[d]),
        )
    })
}

/// Bounds on the deviation of the exact native flow from the data, in units of s, that the
/// frame's start and end explain (see [`exact_native_flow`]), for these MU and STD:
/// - linear and cosine paths: none (pure noise at t = 1, x0 at t = 0);
/// - EDM path: the start at sigma_max = 80 moves the mean by `mu/sqrt(s^2 + 80^2)`, 0.019 at
///   mu = 1.5, and narrows the std by `1 - 80/sqrt(s^2 + 80^2)`, 1.3e-4 at s = 1.3;
/// - LDM schedule: the start at a(1) ≈ 0.068 moves the mean by `a(1) mu / b(1)` (0.103 at
///   mu = 1.5) and the end at level 0 (a0 ≈ 0.99957) by `(1 - a0) mu / s` (0.003 at s = 0.2); the
///   std becomes `sqrt(a0^2 s^2 + b0^2) / sqrt(a(1)^2 s^2 + b(1)^2)`, 1.24% wider at s = 0.2.
fn documented_start_end_bias(f: Formulation) -> (f64, f64) {
    match f.path() {
        Path::LdmLinear => (0.107, 0.0125),
        Path::VarianceExploding => (0.0188, 2e-4),
        Path::Linear | Path::Cosine => (1e-12, 1e-12),
    }
}

/// The acceptance test: 400 native Euler steps reproduce the data's mean and std for all 61.
///
/// References on the same noise (no Monte-Carlo error): the exact flow from the frame's own
/// start ([`exact_native_flow`]), which leaves only Euler's first-order error: 1.2% of s at
/// N = 400 (measured worst 0.68% in the mean on the cosine path and 0.81% in the std on the EDM
/// path, in the narrow dimension s = 0.2; at 50 steps the same errors are 8x larger, as O(1/N)
/// says); and the data `mu + s n`, from which that flow differs by the documented start and end
/// bias ([`documented_start_end_bias`]), checked here too.
#[test]
fn native_euler_400_steps_reproduces_the_gaussian_data_for_all_61() {
    const EULER_TOL: f64 = 0.012;
    let n = noise(2000);
    let data = &n * Tensor::from_slice(&STD).view([1, 3]) + Tensor::from_slice(&MU).view([1, 3]);
    let (mut worst_flow, mut worst_data) = ((0.0f64, 0.0f64), (0.0f64, 0.0f64));
    for f in registry() {
        let times = native_schedule(f, 400, 1.0).unwrap();
        let x = sample_native(f, &network(f), &n, &times, SamplerMethod::Euler).unwrap();
        let flow = exact_native_flow(f, &times, &n);
        let (fm, fs) = relative_stat_errors(&x, &flow);
        let (dm, ds) = relative_stat_errors(&x, &data);
        let (bm, bs) = relative_stat_errors(&flow, &data);
        let (doc_m, doc_s) = documented_start_end_bias(f);
        worst_flow = (worst_flow.0.max(fm), worst_flow.1.max(fs));
        worst_data = (worst_data.0.max(dm), worst_data.1.max(ds));
        assert!(
            fm < EULER_TOL && fs < EULER_TOL,
            "{f}: mean/std off the exact flow by {fm:.2e}/{fs:.2e} of s"
        );
        assert!(
            bm <= doc_m && bs <= doc_s,
            "{f}: the exact flow from its start is off the data by {bm:.2e}/{bs:.2e} of s"
        );
        assert!(
            dm < EULER_TOL + doc_m && ds < EULER_TOL + doc_s,
            "{f}: mean/std off the data by {dm:.2e}/{ds:.2e} of s"
        );
    }
    eprintln!(
        "native Euler, 400 steps, worst over the 61 (units of s): vs the exact flow mean {:.2e} \
         std {:.2e}; vs the data mean {:.2e} std {:.2e}",
        worst_flow.0, worst_flow.1, worst_data.0, worst_data.1
    );
}

/// RMS over samples and dimensions of the per-sample difference, in units of s.
fn rms_difference(x: &Tensor, y: &Tensor) -> f64 {
    let s = Tensor::from_slice(&STD).view([1, 3]);
    ((x - y) / s)
        .square()
        .mean(Kind::Double)
        .sqrt()
        .double_value(&[])
}

/// The two frames are different samplers: on the same noise they differ at 5 steps, and as the
/// steps grow both approach the flow of the data, so their difference falls.
///
/// Measured RMS difference / s at 5, 20, 100, 400 steps: rf family 0.068, 0.0041, 1e-4, 4e-6
/// (both frames take DDIM steps; only the schedules differ: SD3's sigmas vs uniform t);
/// cosine path 0.42, 0.096, 0.019, 0.0049 (native Euler in t is another integrator); EDM path
/// 0.096, 0.048, 0.016, 0.013 (DDIM steps on EDM's schedule), whose floor is the native start at
/// sigma_max = 80 (`mu/80`: RMS 0.012 over these dimensions); LDM schedule 0.64, 0.16, 0.071, 0.069, whose floor is the native start
/// at its noisiest level, `a(1) mu / b(1)` with a(1) ≈ 0.068 (RMS 0.066), where the RF frame starts
/// from pure noise at s = 1.
#[test]
fn frames_differ_at_5_steps_and_agree_as_steps_grow() {
    let n = noise(1000);
    // (name, upper bound on the difference at 400 steps: Euler error plus the start's floor).
    let picks = [
        ("eps/linear", 0.075),
        ("v/linear", 0.075),
        ("eps/cos", 0.01),
        ("v/cos", 0.01),
        ("rf", 1e-3),
        ("rf/lognorm(0.00, 1.00)", 1e-3),
        ("rf/mode(1.29)", 1e-3),
        ("edm(0.00, 1.20)", 0.015),
        ("edm/rf", 0.015),
        ("edm/cos", 0.015),
    ];
    for (name, agree) in picks {
        let f = Formulation::parse(name).unwrap();
        let net = network(f);
        let d: Vec<f64> = [5, 20, 100, 400]
            .into_iter()
            .map(|steps| {
                let frames = SamplerFrame::ALL.map(|frame| {
                    let schedule = frame.schedule(f, steps, 1.0).unwrap();
                    frame
                        .sample(f, &net, &n, &schedule, SamplerMethod::Euler)
                        .unwrap()
                });
                rms_difference(&frames[0], &frames[1])
            })
            .collect();
        eprintln!(
            "{name:>24}: RMS frame difference / s at 5, 20, 100, 400 steps: {:.4} {:.4} {:.4} {:.2e}",
            d[0], d[1], d[2], d[3]
        );
        assert!(d[0] > 0.05, "{name}: frames agree at 5 steps ({:.4})", d[0]);
        assert!(
            d.windows(2).all(|w| w[1] < w[0]),
            "{name}: the difference does not fall with the steps: {d:?}"
        );
        assert!(d[3] < agree && d[3] < d[0] / 5.0, "{name}: {d:?}");
    }
}

/// A model that records the time input of every call.
fn recording(
    f: Formulation,
    calls: &RefCell<Vec<f64>>,
) -> impl Fn(&Tensor, &Tensor) -> Result<Tensor, FormulationError> + '_ {
    let net = network(f);
    move |z: &Tensor, t: &Tensor| {
        calls.borrow_mut().push(t.double_value(&[0]) / 1000.0);
        net(z, t)
    }
}

/// The `t_eq` at which a frame evaluates the network at schedule time `time`: its own level's,
/// clamped to the sampling range.
fn evaluated_t_eq(f: Formulation, frame: SamplerFrame, time: f64) -> f64 {
    let (lo, hi) = f.sampling_t_eq_range();
    let t_eq = match (frame, f.path()) {
        (SamplerFrame::Rf, _) => time,
        (SamplerFrame::Native, Path::VarianceExploding) => time / (1.0 + time),
        (SamplerFrame::Native, _) => f.level(time).t_eq,
    };
    t_eq.clamp(lo, hi)
}

/// The step convention, in both frames: N steps are N + 1 times ending at 0 and N network
/// evaluations, at the first N times (never at the end, where eps-prediction on a path that
/// reaches a = 0 would be singular), and every evaluation moves the sample: the latent after k
/// steps (sampled on the first k + 1 times) differs from the one after k - 1. The smallest move
/// is the last one in both frames: from SD3's last sigma 0.001 (RF) or EDM's sigma_min = 0.002
/// to 0, a final denoising of about 1e-3 of the latent (measured 9.7e-4), and EDM's last
/// rho-step (12 steps: sigma 0.012 -> 0, 2.9e-4). The threshold 1e-5 is far above rounding and
/// far above what EDM's Algorithm 1 spends its last evaluation on (sigma_min = 0.002 -> 0:
/// 1.5e-7 at 2 steps), which the native EDM schedule therefore avoids. Heun adds one evaluation
/// per step but the last.
#[test]
fn n_steps_are_n_network_evaluations_that_each_move_the_sample() {
    let n = noise(200);
    let picks = ["eps/linear", "eps/cos", "v/cos", "rf", "edm(0.00, 1.20)"];
    for frame in SamplerFrame::ALL {
        let mut smallest_move = f64::INFINITY;
        for name in picks {
            let f = Formulation::parse(name).unwrap();
            for steps in [1, 2, 5, 12] {
                let schedule = frame.schedule(f, steps, 1.0).unwrap();
                assert_eq!(schedule.len(), steps + 1, "{frame} {name}");
                assert_eq!(*schedule.last().unwrap(), 0.0, "{frame} {name}");
                let calls = RefCell::new(Vec::new());
                let model = recording(f, &calls);
                let mut previous = match (frame, f.path()) {
                    (SamplerFrame::Native, Path::VarianceExploding) => &n * schedule[0],
                    _ => n.shallow_clone(),
                };
                for k in 1..=steps {
                    calls.borrow_mut().clear();
                    let z = frame
                        .sample(f, &model, &n, &schedule[..=k], SamplerMethod::Euler)
                        .unwrap();
                    let evaluated: Vec<f64> = schedule[..k]
                        .iter()
                        .map(|&t| evaluated_t_eq(f, frame, t))
                        .collect();
                    let recorded = calls.borrow().clone();
                    assert_eq!(recorded.len(), k, "{frame} {name}: calls for {k} steps");
                    for (r, e) in recorded.iter().zip(&evaluated) {
                        assert!(
                            (r - e).abs() < 1e-12,
                            "{frame} {name}: {recorded:?} vs {evaluated:?}"
                        );
                    }
                    let moved = (&z - &previous).norm().double_value(&[])
                        / previous.norm().double_value(&[]);
                    smallest_move = smallest_move.min(moved);
                    assert!(
                        moved > 1e-5,
                        "{frame} {name} step {k} of {steps}: moved {moved:e}"
                    );
                    previous = z;
                }
                calls.borrow_mut().clear();
                let _heun = frame
                    .sample(f, &model, &n, &schedule, SamplerMethod::Heun)
                    .unwrap();
                assert_eq!(
                    calls.borrow().len(),
                    2 * steps - 1,
                    "{frame} {name}: Heun calls"
                );
            }
        }
        eprintln!("{frame} frame: smallest relative move of one evaluation {smallest_move:.2e}");
    }
}

/// `(da/dt, db/dt)` of every path against central differences of its coefficients (the LDM
/// schedule away from its knots, where the piecewise-linear log-SNR has one slope).
#[test]
fn coefficient_rates_are_the_derivatives_of_the_paths() {
    let h = 1e-7;
    for path in [
        Path::Linear,
        Path::Cosine,
        Path::LdmLinear,
        Path::VarianceExploding,
    ] {
        for t in [0.05, 0.2, 0.4995, 0.73, 0.9] {
            let (da, db) = path.coefficient_rates(t);
            let ((a0, b0), (a1, b1)) = (path.coefficients(t - h), path.coefficients(t + h));
            let (fa, fb) = ((a1 - a0) / (2.0 * h), (b1 - b0) / (2.0 * h));
            let tol = 1e-6 * (1.0 + fa.abs() + fb.abs());
            assert!(
                (da - fa).abs() < tol && (db - fb).abs() < tol,
                "{path:?} at {t}: ({da}, {db}) vs ({fa}, {fb})"
            );
        }
    }
}

/// The native schedules of docs/protocol.md section 7, and the shift on them.
#[test]
fn native_schedules_follow_each_familys_rule() {
    let rf = Formulation::Rf;
    let cos = Formulation::EpsCos;
    let ldm = Formulation::VLinear;
    let edm = Formulation::EdmRf;
    // Uniform in native time without shift; for rf that is `uniform_schedule`, shifted or not.
    for f in [rf, cos, ldm] {
        let times = native_schedule(f, 4, 1.0).unwrap();
        assert_eq!(times, vec![1.0, 0.75, 0.5, 0.25, 0.0], "{f}");
    }
    for shift in [1.0, 3.0] {
        assert_eq!(
            native_schedule(rf, 7, shift).unwrap(),
            uniform_schedule(7, shift).unwrap()
        );
    }
    // EDM: rho = 7 between 80 and 0.002 on N + 1 points, the last taken as 0.
    let sigmas = native_schedule(edm, 5, 1.0).unwrap();
    assert_eq!(sigmas.len(), 6);
    assert!((sigmas[0] - EDM_SIGMA_MAX).abs() < 1e-12 && sigmas[5] == 0.0);
    let roots: Vec<f64> = sigmas[..5].iter().map(|s| s.powf(1.0 / 7.0)).collect();
    let step = (EDM_SIGMA_MIN.powf(1.0 / 7.0) - EDM_SIGMA_MAX.powf(1.0 / 7.0)) / 5.0;
    for w in roots.windows(2) {
        assert!((w[1] - w[0] - step).abs() < 1e-12, "{roots:?}");
    }
    // The shift lowers every log-SNR by 2 ln alpha: interior times of the path families (their
    // ends stay), every sigma of EDM (sigma -> alpha sigma).
    let alpha = 3.0;
    let drop = 2.0 * f64::ln(alpha);
    for f in [rf, cos] {
        let (plain, shifted) = (
            native_schedule(f, 6, 1.0).unwrap(),
            native_schedule(f, 6, alpha).unwrap(),
        );
        assert_eq!((shifted[0], shifted[6]), (1.0, 0.0));
        for i in 1..6 {
            let d = f.level(plain[i]).lambda - f.level(shifted[i]).lambda;
            assert!((d - drop).abs() < 1e-9, "{f} time {i}: log-SNR drop {d}");
        }
    }
    let shifted = native_schedule(edm, 5, alpha).unwrap();
    for (p, s) in sigmas.iter().zip(&shifted) {
        assert!((s - alpha * p).abs() < 1e-12 * s.max(1.0));
    }
    // The LDM schedule's log-SNR is bounded: it takes no shift, whatever the steps.
    for (steps, shift) in [(2, alpha), (5, alpha), (50, 1.25), (50, 0.8)] {
        let err = native_schedule(ldm, steps, shift).unwrap_err().to_string();
        assert!(
            err.contains(&format!("shift {shift}")) && err.contains("v/linear"),
            "{err}"
        );
    }
    assert!(native_schedule(rf, 0, 1.0).is_err() && native_schedule(rf, 4, 0.0).is_err());
}

/// On the linear path (rf) and in sigma (EDM) a and b are affine in the ODE time, so a native
/// Euler step is a DDIM step, as an RF-frame step is: on the same log-SNRs the frames are one
/// sampler, and they differ only by their schedules (and EDM's start at a finite sigma).
#[test]
fn native_euler_on_rf_and_edm_is_the_rf_frame_on_the_same_log_snrs() {
    let n = noise(300);
    let rf = Formulation::parse("rf/lognorm(0.00, 1.00)").unwrap();
    let times = native_schedule(rf, 9, 3.0).unwrap();
    let native = sample_native(rf, &network(rf), &n, &times, SamplerMethod::Euler).unwrap();
    let rf_frame = sample(rf, &network(rf), &n, &times, SamplerMethod::Euler).unwrap();
    assert!(native.allclose(&rf_frame, 1e-12, 1e-12, false));

    let edm = Formulation::parse("edm(0.60, 1.20)").unwrap();
    let sigmas = native_schedule(edm, 9, 1.0).unwrap();
    let native = sample_native(edm, &network(edm), &n, &sigmas, SamplerMethod::Euler).unwrap();
    // EDM's start `sigma_0 n` is the RF latent `sigma_0/(1 + sigma_0) n` at s = t_eq(sigma_0).
    let s: Vec<f64> = sigmas.iter().map(|v| v / (1.0 + v)).collect();
    let start = &n * s[0];
    let rf_frame = sample(edm, &network(edm), &start, &s, SamplerMethod::Euler).unwrap();
    let diff = (&native - &rf_frame).abs().max().double_value(&[]);
    assert!(diff < 1e-9, "{diff:e}");
}

/// Native Heun is second order where the native velocity is smooth in time: halving the step
/// divides its error by about 4 (measured 3.9 on the cosine path). Not on the LDM schedule: its
/// log-SNR is piecewise linear in t, and near level 0 it falls like `lambda_0 - ln(k + 1)`, so b
/// grows like `sqrt(k + 1)` over the first levels, a kink per level that a step of 1/N crosses;
/// Heun and Euler both end with an error of a few 1e-3 of s there (measured at 50..400 steps;
/// stopped at t = 0.05, Heun's error falls 3.5x per halving again).
#[test]
fn native_heun_is_second_order_off_the_ldm_schedule() {
    let n = noise(500);
    for name in ["eps/cos", "rf", "edm(-0.60, 1.80)", "v/linear"] {
        let f = Formulation::parse(name).unwrap();
        let error = |steps, method| {
            let times = native_schedule(f, steps, 1.0).unwrap();
            let x = sample_native(f, &network(f), &n, &times, method).unwrap();
            rms_difference(&x, &exact_native_flow(f, &times, &n))
        };
        let heun: Vec<f64> = [25, 50, 100]
            .into_iter()
            .map(|steps| error(steps, SamplerMethod::Heun))
            .collect();
        let euler = error(50, SamplerMethod::Euler);
        eprintln!(
            "{name}: native Heun at 25, 50, 100 steps {:.2e} {:.2e} {:.2e}; Euler at 50 {euler:.2e} \
             (RMS / s)",
            heun[0], heun[1], heun[2]
        );
        assert!(
            heun[1] < euler / 4.0,
            "{name}: Heun {heun:?} vs Euler {euler:e}"
        );
        if f.path() != Path::LdmLinear {
            assert!(
                heun[0] / heun[1] > 3.5 && heun[1] / heun[2] > 3.5,
                "{name}: not second order: {heun:?}"
            );
        }
    }
}

#[test]
fn sampler_frames_parse_their_names_and_refuse_others() {
    for frame in SamplerFrame::ALL {
        assert_eq!(SamplerFrame::parse(&frame.to_string()).unwrap(), frame);
    }
    assert_eq!(SamplerFrame::default(), SamplerFrame::Rf);
    let err = SamplerFrame::parse("Native").unwrap_err().to_string();
    assert!(err.contains("\"rf\" or \"native\""), "{err}");
}
