use flowscale_torch_ext::fused_adamw::{fused_adamw_step, AdamWParams, AdamWTensors};
use tch::{Device, Kind, Tensor};

/// AdamW written out with plain tensor ops in float64, the update `torch.optim.AdamW`
/// documents: decoupled decay, bias-corrected moments, eps after the square root.
struct ReferenceAdamW {
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: i32,
}

impl ReferenceAdamW {
    fn new(params: &[Tensor]) -> Self {
        let params: Vec<Tensor> = params.iter().map(|p| p.to_kind(Kind::Double)).collect();
        let m = params.iter().map(Tensor::zeros_like).collect();
        let v = params.iter().map(Tensor::zeros_like).collect();
        Self {
            params,
            m,
            v,
            step: 0,
        }
    }

    fn step(&mut self, grads: &[Tensor], hp: &AdamWParams) {
        self.step += 1;
        let bc1 = 1.0 - hp.beta1.powi(self.step);
        let bc2 = 1.0 - hp.beta2.powi(self.step);
        for (i, grad) in grads.iter().enumerate() {
            let g = grad.to_kind(Kind::Double);
            let p = &self.params[i] * (1.0 - hp.lr * hp.weight_decay);
            self.m[i] = &self.m[i] * hp.beta1 + &g * (1.0 - hp.beta1);
            self.v[i] = &self.v[i] * hp.beta2 + g.square() * (1.0 - hp.beta2);
            let denom = (&self.v[i] / bc2).sqrt() + hp.eps;
            self.params[i] = p - (&self.m[i] / &denom) * (hp.lr / bc1);
        }
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

/// `max |a - b| / (1 + |b|)`: float32 rounding scales with the magnitude of the values, and the
/// random data (torch's global generator, shared with the other tests of this binary running on
/// parallel threads) is not the same on every run.
fn max_rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let b = b.to_kind(Kind::Double);
    ((a.to_kind(Kind::Double) - &b).abs() / (b.abs() + 1.0))
        .max()
        .double_value(&[])
}

fn run_against_reference(hp: AdamWParams) -> f64 {
    tch::manual_seed(7);
    let opts = (Kind::Float, Device::Cpu);
    let params = vec![
        Tensor::randn([17, 5], opts),
        Tensor::randn([64], opts),
        Tensor::randn([3, 4, 5], opts),
    ];
    let m: Vec<Tensor> = params.iter().map(Tensor::zeros_like).collect();
    let v: Vec<Tensor> = params.iter().map(Tensor::zeros_like).collect();
    let steps: Vec<Tensor> = params.iter().map(|_| Tensor::zeros([], opts)).collect();
    let mut reference = ReferenceAdamW::new(&params);
    let mut worst: f64 = 0.0;
    for _ in 0..10 {
        let grads: Vec<Tensor> = params.iter().map(|p| p.randn_like() * 0.3).collect();
        tch::no_grad(|| {
            for s in &steps {
                let _ = s.shallow_clone().f_add_scalar_(1.0).unwrap();
            }
            fused_adamw_step(
                &AdamWTensors {
                    params: &params,
                    grads: &grads,
                    exp_avgs: &m,
                    exp_avg_sqs: &v,
                    max_exp_avg_sqs: &[],
                    state_steps: &steps,
                },
                &hp,
            )
            .unwrap();
        });
        reference.step(&grads, &hp);
        for (p, r) in params.iter().zip(&reference.params) {
            worst = worst.max(max_rel_diff(p, r));
        }
    }
    // The update really moved the parameters (a no-op kernel would fail here).
    assert!(max_abs_diff(&params[0], &reference.params[0].zeros_like()) > 0.0);
    worst
}

#[test]
fn fused_adamw_matches_plain_adamw_over_ten_steps() {
    let hp = AdamWParams {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.99,
        weight_decay: 0.1,
        eps: 1e-8,
        amsgrad: false,
        maximize: false,
    };
    let worst = run_against_reference(hp);
    assert!(
        worst < 1e-6,
        "fused AdamW deviates from the reference by {worst} (relative)"
    );
}

#[test]
fn fused_adamw_matches_with_tiny_eps_as_sd3_uses() {
    // SD3 trains with eps = 1e-15 for bf16 stability at high resolution.
    let hp = AdamWParams {
        lr: 1e-3,
        eps: 1e-15,
        weight_decay: 0.0,
        ..AdamWParams::default()
    };
    let worst = run_against_reference(hp);
    assert!(
        worst < 1e-6,
        "fused AdamW deviates from the reference by {worst} (relative)"
    );
}

#[test]
fn fused_adamw_moves_params_against_the_gradient() {
    let p = Tensor::from_slice(&[1.0f32, -2.0, 3.0]);
    let g = Tensor::from_slice(&[0.5f32, -0.5, 0.0]);
    let m = p.zeros_like();
    let v = p.zeros_like();
    let s = Tensor::ones([], (Kind::Float, Device::Cpu));
    let hp = AdamWParams {
        lr: 0.1,
        weight_decay: 0.0,
        ..AdamWParams::default()
    };
    let params = [p.shallow_clone()];
    fused_adamw_step(
        &AdamWTensors {
            params: &params,
            grads: &[g],
            exp_avgs: &[m],
            exp_avg_sqs: &[v],
            max_exp_avg_sqs: &[],
            state_steps: &[s],
        },
        &hp,
    )
    .unwrap();
    // First Adam step is lr * sign(g) where g != 0.
    let got = Vec::<f32>::try_from(&p).unwrap();
    assert!((got[0] - 0.9).abs() < 1e-6, "{got:?}");
    assert!((got[1] + 1.9).abs() < 1e-6, "{got:?}");
    assert!((got[2] - 3.0).abs() < 1e-6, "{got:?}");
}

#[test]
fn mismatched_state_lists_are_rejected_by_name() {
    let p = Tensor::zeros([2], (Kind::Float, Device::Cpu));
    let params = [p.shallow_clone()];
    let err = fused_adamw_step(
        &AdamWTensors {
            params: &params,
            grads: &[p.zeros_like()],
            exp_avgs: &[],
            exp_avg_sqs: &[p.zeros_like()],
            max_exp_avg_sqs: &[],
            state_steps: &[p.zeros_like()],
        },
        &AdamWParams::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("exp_avgs"), "{err}");
}

#[test]
fn mis_shaped_gradients_are_rejected_before_the_kernel_runs() {
    let p = Tensor::zeros([4], (Kind::Float, Device::Cpu));
    let params = [p.shallow_clone()];
    let err = fused_adamw_step(
        &AdamWTensors {
            params: &params,
            grads: &[Tensor::zeros([3], (Kind::Float, Device::Cpu))],
            exp_avgs: &[p.zeros_like()],
            exp_avg_sqs: &[p.zeros_like()],
            max_exp_avg_sqs: &[],
            state_steps: &[Tensor::ones([], (Kind::Float, Device::Cpu))],
        },
        &AdamWParams::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("grad of parameter 0 has shape [3]"), "{err}");
}

#[test]
fn libtorch_errors_come_back_as_errors_not_aborts() {
    // Integer parameters: ATen's kernel raises, the shim turns the exception into an Err.
    let p = Tensor::zeros([4], (Kind::Int64, Device::Cpu));
    let params = [p.shallow_clone()];
    let result = fused_adamw_step(
        &AdamWTensors {
            params: &params,
            grads: &[p.zeros_like()],
            exp_avgs: &[p.zeros_like()],
            exp_avg_sqs: &[p.zeros_like()],
            max_exp_avg_sqs: &[],
            state_steps: &[Tensor::ones([], (Kind::Float, Device::Cpu))],
        },
        &AdamWParams::default(),
    );
    let err = result.unwrap_err().to_string();
    assert!(
        err.starts_with("libtorch error in fused_adamw_step"),
        "{err}"
    );
}
