//! CUDA graphs. Without a GPU: capturing is a named error (the unit test in
//! `src/cuda_graph.rs`). With `--features cuda-tests` on a GPU host: a small training step
//! (forward, loss, backward, in-place SGD update, gradients zeroed in place) captured once and
//! replayed on new batches copied into its static inputs gives the same parameters and losses
//! as the same steps run eagerly.

#[cfg(feature = "cuda-tests")]
#[test]
fn a_captured_training_step_replays_like_eager_steps() {
    use flowscale_torch_ext::cuda_graph::CudaGraph;
    use tch::{Device, Kind, Tensor};

    assert!(tch::Cuda::is_available(), "cuda-tests needs a CUDA device");
    let dev = Device::Cuda(0);
    tch::manual_seed(0);
    let init = |shape: &[i64]| Tensor::randn(shape, (Kind::Float, dev)) * 0.3;
    let (w1, w2) = (init(&[16, 8]), init(&[4, 16]));
    let batches: Vec<(Tensor, Tensor)> = (0..4)
        .map(|_| {
            (
                Tensor::randn([32, 8], (Kind::Float, dev)),
                Tensor::randn([32, 4], (Kind::Float, dev)),
            )
        })
        .collect();
    // One parameter set per side; the step is the same code.
    let params = |w: &[&Tensor]| -> Vec<Tensor> {
        w.iter().map(|t| t.copy().set_requires_grad(true)).collect()
    };
    let step = |p: &[Tensor], x: &Tensor, y: &Tensor, loss_out: &mut Tensor| {
        let h = x.matmul(&p[0].tr()).gelu("tanh");
        let loss = (h.matmul(&p[1].tr()) - y).square().mean(Kind::Float);
        loss.backward();
        tch::no_grad(|| {
            for t in p {
                let mut g = t.grad();
                let _ = t.shallow_clone().f_sub_(&(&g * 0.05)).unwrap();
                let _ = g.zero_();
            }
            loss_out.copy_(&loss);
        });
    };
    let eager = params(&[&w1, &w2]);
    let mut eager_loss = Tensor::zeros([], (Kind::Float, dev));
    let graphed = params(&[&w1, &w2]);
    let mut graph_loss = Tensor::zeros([], (Kind::Float, dev));
    // Static inputs, filled with batch 0 for the warm-up steps (which really run: 2 of them).
    let mut x = batches[0].0.copy();
    let mut y = batches[0].1.copy();
    let graph = CudaGraph::capture(0, 2, || -> Result<(), String> {
        step(&graphed, &x, &y, &mut graph_loss);
        Ok(())
    })
    .unwrap();
    assert_eq!(graph.device(), 0);
    for _ in 0..2 {
        step(&eager, &batches[0].0, &batches[0].1, &mut eager_loss);
    }
    let close = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
    for (bx, by) in &batches[1..] {
        x.copy_(bx);
        y.copy_(by);
        graph.replay().unwrap();
        step(&eager, bx, by, &mut eager_loss);
        assert!(close(&graph_loss, &eager_loss) < 1e-6);
        for (g, e) in graphed.iter().zip(&eager) {
            assert!(close(g, e) < 1e-6);
        }
    }
    // The replays trained: the parameters moved away from the initial weights.
    assert!(close(&graphed[0], &w1) > 1e-3);
}
