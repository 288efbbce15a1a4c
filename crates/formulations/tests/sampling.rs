//! The sigma schedule, EDM preconditioning, CFG and conversions.

use flowscale_formulations::{
    cfg, guided, registry, sd3_sigmas, EdmPreconditioning, Formulation, FormulationError,
    Parameterisation,
};
use tch::{Device, Kind, Tensor};

#[test]
fn sd3_sigmas_for_shift_3_and_28_steps_match_the_reference() {
    let expected = [
        1.0, 0.9874, 0.9741, 0.9601, 0.9454, 0.9298, 0.9133, 0.8959, 0.8774, 0.8577, 0.8367,
        0.8143, 0.7904, 0.7647, 0.7371, 0.7073, 0.6751, 0.6402, 0.6022, 0.5606, 0.5151, 0.4649,
        0.4093, 0.3474, 0.2780, 0.1998, 0.1109, 0.0089, 0.0,
    ];
    let sigmas = sd3_sigmas(28, 3.0).unwrap();
    assert_eq!(sigmas.len(), 29);
    for (i, (s, e)) in sigmas.iter().zip(expected).enumerate() {
        // The reference prints 4 decimals: agreement to 1e-4 means within rounding (5e-5) plus slack.
        assert!((s - e).abs() <= 1e-4, "sigma {i}: {s} vs {e}");
    }
    assert!(sd3_sigmas(0, 3.0).is_err() && sd3_sigmas(10, -1.0).is_err());
}

#[test]
fn edm_wrapper_matches_its_formulas_and_the_training_target() {
    let pre = EdmPreconditioning::default();
    for sigma in [0.01, 0.5, 3.0, 80.0] {
        // c_out^2 · lambda(sigma) = 1 and c_skip + c_out^2/sd^2 ... (c_skip = sd^2/(sigma^2+sd^2)).
        assert!((pre.c_out(sigma).powi(2) * pre.loss_weight(sigma) - 1.0).abs() < 1e-12);
        assert!((pre.c_skip(sigma) - 0.25 / (sigma * sigma + 0.25)).abs() < 1e-15);
        assert!((pre.c_noise(sigma) - sigma.ln() / 4.0).abs() < 1e-15);
    }
    // With a backbone returning the training target's optimum for known (x0, eps), D recovers x0.
    tch::manual_seed(3);
    let x0 = Tensor::randn([3, 5], (Kind::Double, Device::Cpu));
    let eps = Tensor::randn([3, 5], (Kind::Double, Device::Cpu));
    let sigmas = [0.05, 1.0, 20.0];
    let sig = Tensor::from_slice(&sigmas).view([3, 1]);
    let x = &x0 + &eps * &sig;
    let f = Formulation::EdmRf;
    let param = f.parameterisation();
    let coeff: Vec<(f64, f64)> = sigmas
        .iter()
        .map(|&s| param.target_coefficients(&f.level(s / (1.0 + s))))
        .collect();
    let ca = Tensor::from_slice(&coeff.iter().map(|c| c.0).collect::<Vec<_>>()).view([3, 1]);
    let cb = Tensor::from_slice(&coeff.iter().map(|c| c.1).collect::<Vec<_>>()).view([3, 1]);
    let target = &x0 * ca + &eps * cb;
    let d = pre
        .denoise(|_, _| target.shallow_clone(), &x, &sigmas)
        .unwrap();
    assert!((d - &x0).abs().max().double_value(&[]) < 1e-10);
    assert!(pre.denoise(|z, _| z.shallow_clone(), &x, &[1.0]).is_err());
}

#[test]
fn conversions_recover_x0_and_eps_for_every_formulation() {
    tch::manual_seed(4);
    let x0 = Tensor::randn([2, 3], (Kind::Double, Device::Cpu));
    let eps = Tensor::randn([2, 3], (Kind::Double, Device::Cpu));
    for f in registry() {
        for t in [0.05, 0.5, 0.9] {
            let level = f.level(t);
            let z = &x0 * level.a + &eps * level.b;
            let (ca, cb) = f.parameterisation().target_coefficients(&level);
            let out = &x0 * ca + &eps * cb;
            let p = f.predictions(&out, &z, &level).unwrap();
            let err = (&p.x0 - &x0).abs().max().double_value(&[])
                + (&p.eps - &eps).abs().max().double_value(&[]);
            assert!(err < 1e-9, "{f} at {t}: {err}");
            let v = p.vp_velocity(&level).unwrap();
            let expected = &eps * level.a - &x0 * level.b;
            assert!((v - expected).abs().max().double_value(&[]) < 1e-9);
        }
    }
    // The parameterisations' targets are what the reference says.
    let level = Formulation::VCos.level(0.3);
    assert_eq!(
        Parameterisation::VpVelocity.target_coefficients(&level),
        (-level.b, level.a)
    );
    assert_eq!(
        Parameterisation::RfVelocity.target_coefficients(&level),
        (-1.0, 1.0)
    );
    assert_eq!(
        Parameterisation::Epsilon.target_coefficients(&level),
        (0.0, 1.0)
    );
}

#[test]
fn cfg_is_u_plus_w_c_minus_u() {
    let u = Tensor::from_slice(&[1.0f64, 2.0]);
    let c = Tensor::from_slice(&[3.0f64, -2.0]);
    let g = cfg(&u, &c, 2.5).unwrap();
    assert_eq!(Vec::<f64>::try_from(&g).unwrap(), vec![6.0, -8.0]);
    let model = guided(
        |z: &Tensor, _: &Tensor| Ok::<_, FormulationError>(z * 0.0 + 1.0),
        |z: &Tensor, _: &Tensor| Ok(z * 0.0 + 3.0),
        2.5,
    );
    let out = model(
        &Tensor::zeros([2], (Kind::Double, Device::Cpu)),
        &Tensor::zeros([2], (Kind::Double, Device::Cpu)),
    )
    .unwrap();
    assert_eq!(Vec::<f64>::try_from(&out).unwrap(), vec![6.0, 6.0]);
}
