//! Unit tests of the sequence models: the kernel against burn's per-gate `Lstm` (forward and
//! gradients), shapes, save/load, determinism, and that both models learn a held-out signal.

use burn::module::Param;
use burn::nn::LstmConfig;
use burn::tensor::{Device, Tensor, TensorData};

use super::kernel::{self, LstmWeights};
use super::model::{Dense, SequenceLstmConfig, SplitMix};
use super::*;
use omen_features::feature::sequence::{MetricScale, Normalisation, SequenceLayout};

fn cpu() -> Device {
    cpu_device()
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn random(n: usize, scale: f32, rng: &mut SplitMix) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(scale)).collect()
}

fn random_weights(d: usize, h: usize, rng: &mut SplitMix) -> LstmWeights {
    LstmWeights {
        d_input: d,
        d_hidden: h,
        w_ih: random(d * 4 * h, 0.5, rng),
        w_hh: random(h * 4 * h, 0.5, rng),
        bias: random(4 * h, 0.5, rng),
    }
}

/// burn's built-in `Lstm` (a `Linear` per gate for the input and another for the hidden state,
/// four gates computed one by one) holding the same weights: the naive reference.
fn reference_lstm(w: &LstmWeights, device: &Device) -> burn::nn::Lstm {
    let (d, h) = (w.d_input, w.d_hidden);
    let mut lstm = LstmConfig::new(d, h, true).init(device);
    // our gate order along 4H: input, forget, output, candidate
    let block = |m: &[f32], rows: usize, gate: usize| -> Vec<f32> {
        let mut out = Vec::with_capacity(rows * h);
        for r in 0..rows {
            out.extend_from_slice(&m[r * 4 * h + gate * h..r * 4 * h + (gate + 1) * h]);
        }
        out
    };
    let set = |gc: &mut burn::nn::GateController, gate: usize| {
        gc.input_transform.weight = Param::from_tensor(Tensor::from_data(TensorData::new(block(&w.w_ih, d, gate), [d, h]), device));
        gc.input_transform.bias =
            Some(Param::from_tensor(Tensor::from_data(TensorData::new(w.bias[gate * h..(gate + 1) * h].to_vec(), [h]), device)));
        gc.hidden_transform.weight = Param::from_tensor(Tensor::from_data(TensorData::new(block(&w.w_hh, h, gate), [h, h]), device));
        gc.hidden_transform.bias = Some(Param::from_tensor(Tensor::zeros([h], device)));
    };
    set(&mut lstm.input_gate, 0);
    set(lstm.forget_gate.as_mut().unwrap(), 1);
    set(&mut lstm.output_gate, 2);
    set(&mut lstm.cell_gate, 3);
    lstm
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let scale = 1.0f32.max(x.abs()).max(y.abs());
        assert!((x - y).abs() <= tol * scale, "{what}[{i}]: {x} vs {y}");
    }
}

#[test]
fn kernel_forward_equals_the_per_gate_reference() {
    let mut rng = SplitMix(7);
    let (b, t, d, h) = (3, 9, 5, 6);
    let w = random_weights(d, h, &mut rng);
    let x = random(b * t * d, 1.0, &mut rng);
    let device = cpu();
    let (_, state) = reference_lstm(&w, &device).forward(Tensor::from_data(TensorData::new(x.clone(), [b, t, d]), &device), None);
    let trace = kernel::forward(&w, &kernel::time_major(&x, b, t, d), t, b);
    assert_close(trace.last_hidden(), &to_vec(state.hidden), 2e-6, "h_T");
    // and one sequence at a time (the serving path) gives the same rows
    for r in 0..b {
        let one = kernel::forward(&w, &x[r * t * d..(r + 1) * t * d], t, 1);
        assert_close(one.last_hidden(), &trace.last_hidden()[r * h..(r + 1) * h], 1e-6, "single row");
    }
}

#[test]
fn burn_op_forward_equals_the_kernel() {
    let mut rng = SplitMix(11);
    let (b, t, d, h) = (4, 7, 3, 5);
    let device = cpu();
    let lstm = SequenceLstmConfig::new(d, h).init(&device, &mut rng);
    let w = lstm.weights();
    let x = random(b * t * d, 1.0, &mut rng);
    let burn_h = to_vec(lstm.forward(Tensor::from_data(TensorData::new(x.clone(), [b, t, d]), &device)));
    let trace = kernel::forward(&w, &kernel::time_major(&x, b, t, d), t, b);
    assert_close(trace.last_hidden(), &burn_h, 2e-6, "h_T");
}

#[test]
fn kernel_gradients_equal_burn_autodiff_of_the_per_gate_reference() {
    let mut rng = SplitMix(3);
    let (b, t, d, h) = (3, 8, 4, 5);
    let w = random_weights(d, h, &mut rng);
    let x = random(b * t * d, 1.0, &mut rng);
    let r = random(b * h, 1.0, &mut rng); // loss = Σ r ⊙ h_T, so dL/dh_T = r
    let device = cpu().autodiff();
    let lstm = reference_lstm(&w, &device);
    let (_, state) = lstm.forward(Tensor::from_data(TensorData::new(x.clone(), [b, t, d]), &device), None);
    let loss = (state.hidden * Tensor::<2>::from_data(TensorData::new(r.clone(), [b, h]), &device)).sum();
    let grads = loss.backward();
    let g = |p: &Param<Tensor<2>>| to_vec(p.val().grad(&grads).unwrap());
    let gb = |p: &Option<Param<Tensor<1>>>| to_vec(p.as_ref().unwrap().val().grad(&grads).unwrap());
    let gates = [&lstm.input_gate, lstm.forget_gate.as_ref().unwrap(), &lstm.output_gate, &lstm.cell_gate];

    let xt = kernel::time_major(&x, b, t, d);
    let mut trace = kernel::forward(&w, &xt, t, b);
    let ours = kernel::backward(&w, &xt, &mut trace, &r);
    for (gate, gc) in gates.iter().enumerate() {
        let (gi, gh, bias) = (g(&gc.input_transform.weight), g(&gc.hidden_transform.weight), gb(&gc.input_transform.bias));
        for row in 0..d {
            assert_close(&ours.w_ih[row * 4 * h + gate * h..row * 4 * h + (gate + 1) * h], &gi[row * h..(row + 1) * h], 1e-5, "dW_ih");
        }
        for row in 0..h {
            assert_close(&ours.w_hh[row * 4 * h + gate * h..row * 4 * h + (gate + 1) * h], &gh[row * h..(row + 1) * h], 1e-5, "dW_hh");
        }
        assert_close(&ours.bias[gate * h..(gate + 1) * h], &bias, 1e-5, "db");
    }
}

#[test]
fn dense_weights_apply_like_the_module() {
    let mut rng = SplitMix(5);
    let device = cpu();
    let dense = Dense::init(4, 3, &device, &mut rng);
    let x = random(2 * 4, 1.0, &mut rng);
    let burn_y = to_vec(dense.forward(Tensor::from_data(TensorData::new(x.clone(), [2, 4]), &device)));
    assert_close(&dense.weights().apply(&x), &burn_y, 1e-6, "dense");
}

// ---- fitting on a synthetic task with a held-out split ----

const STEPS: usize = 20;

/// Two metrics × 5 channels like the features module lays them out; a failing canary drifts up
/// from a random step on (a slow leak); the forecast target continues each series.
fn synthetic(n: usize, seed: u64) -> (ForecastSet, LabelledSet) {
    let mut rng = SplitMix(seed);
    let channels = 10;
    let horizon = 3;
    let mut x = Sequences::new(STEPS, channels);
    let mut y = Vec::new();
    let mut mask = Vec::new();
    let mut label = Vec::new();
    for _ in 0..n {
        let failing = rng.below(2) == 1;
        let onset = rng.below(STEPS / 2);
        let slope = if failing { 0.15 + 0.1 * rng.uniform(1.0).abs() } else { 0.0 };
        let mut window = vec![0.0f32; STEPS * channels];
        let mut last = [0.0f32; 2];
        for s in 0..STEPS {
            for m in 0..2 {
                let base = rng.uniform(0.3);
                let canary = base + if s >= onset { slope * (s - onset) as f32 } else { 0.0 } + rng.uniform(0.3);
                let row = &mut window[s * channels + m * 5..s * channels + m * 5 + 5];
                row.copy_from_slice(&[canary, base, 1.0, 1.0, 0.0]);
                last[m] = canary;
            }
        }
        // a gap: one masked step
        let gap = rng.below(STEPS);
        for m in 0..2 {
            window[gap * channels + m * 5..gap * channels + m * 5 + 5].copy_from_slice(&[0.0; 5]);
        }
        x.push(&window);
        for k in 1..=horizon {
            for m in 0..2 {
                y.push(last[m] + slope * k as f32);
                mask.push(1.0);
            }
        }
        label.push(if failing { 1.0 } else { 0.0 });
    }
    (ForecastSet { x: x.clone(), metrics: 2, horizon, y, mask }, LabelledSet { x, label })
}

fn small_params(seed: u64) -> ValidSequenceParams {
    SequenceParams { hidden: 12, epochs: 12, batch_size: 32, learning_rate: 1e-2, min_learning_rate: 1e-3, patience: 4, seed, horizon: 3, ..SequenceParams::default() }
        .check()
        .unwrap()
}

fn fit(seed: u64) -> (SequenceModel, TrainHistory, TrainHistory) {
    let params = small_params(seed);
    let (ftrain, ctrain) = synthetic(384, 1);
    let (fvalid, cvalid) = synthetic(96, 2);
    let config = params.training_config(10, 2);
    let (forecaster, fh) = params.fit_forecaster(&config.forecaster, &ftrain, &fvalid, &Engine::Kernel, &mut |_| {}).unwrap();
    let (classifier, ch) = params.fit_classifier(&config.classifier, &ctrain, &cvalid, &Engine::Kernel, &mut |_| {}).unwrap();
    let layout = SequenceLayout { metrics: vec!["a".into(), "b".into()], step_us: 30_000_000, window: STEPS };
    let norm = Normalisation { metrics: vec![MetricScale { mean: 0.0, std: 1.0 }; 2] };
    (SequenceModel::new(config, layout, norm, forecaster, classifier).unwrap(), fh, ch)
}

fn auc(label: &[f32], p: &[f64]) -> f64 {
    let mut pairs = 0.0;
    let mut wins = 0.0;
    for (i, &li) in label.iter().enumerate() {
        for (j, &lj) in label.iter().enumerate() {
            if li == 1.0 && lj == 0.0 {
                pairs += 1.0;
                wins += if p[i] > p[j] { 1.0 } else if p[i] == p[j] { 0.5 } else { 0.0 };
            }
        }
    }
    wins / pairs
}

#[test]
fn fitted_models_learn_the_held_out_signal_and_round_trip() {
    let (model, fh, ch) = fit(1);
    let (ftest, ctest) = synthetic(200, 3);
    // the classifier separates failing from healthy canaries it never saw
    let p = model.failure_probability_batch(&ctest.x);
    let a = auc(&ctest.label, &p);
    assert!(a > 0.9, "held-out AUC {a}");
    // the forecaster beats "the last value stays" on held-out windows
    let pred = model.forecast_batch(&ftest.x);
    let q: Vec<f32> = model.config.forecaster.quantiles.iter().map(|&q| q as f32).collect();
    let ours = pinball_loss(&pred, &ftest.y, &ftest.mask, &q);
    let mut naive = Vec::new();
    for i in 0..ftest.x.len() {
        let w = ftest.x.row(i);
        let last = [w[(STEPS - 1) * 10], w[(STEPS - 1) * 10 + 5]];
        for _ in 0..3 {
            for m in 0..2 {
                naive.extend(std::iter::repeat_n(last[m], q.len()));
            }
        }
    }
    let base = pinball_loss(&naive, &ftest.y, &ftest.mask, &q);
    assert!(ours < 0.8 * base, "pinball {ours} vs last-value {base}");
    assert!(fh.best_epoch >= 1 && ch.best_epoch >= 1);
    // shapes
    assert_eq!(pred.len(), 200 * 3 * 2 * 3);
    assert_eq!(p.len(), 200);
    // save/load gives identical predictions
    let bytes = model.to_bytes();
    let back = SequenceModel::from_bytes(&bytes).unwrap();
    assert_eq!(back.forecast_batch(&ftest.x), pred);
    assert_eq!(back.failure_probability_batch(&ctest.x), p);
    assert_eq!(back.to_bytes(), bytes);
    // a calibration travels with the artifact and changes the probabilities, not their order
    let y: Vec<f64> = ctest.label.iter().map(|&l| l as f64).collect();
    let platt = crate::calibrate::Platt::fit(&model.failure_logits_batch(&ctest.x), &y);
    assert!(platt.is_some());
    let calibrated = model.clone().with_calibration(platt);
    let pc = calibrated.failure_probability_batch(&ctest.x);
    assert_ne!(pc, p);
    assert_eq!(auc(&ctest.label, &pc), a, "a monotone map keeps the ranking");
    let back = SequenceModel::from_bytes(&calibrated.to_bytes()).unwrap();
    assert_eq!(back.calibration(), calibrated.calibration());
    assert_eq!(back.failure_probability_batch(&ctest.x), pc);
    // corruption is refused before parsing
    let mut bad = bytes.clone();
    bad[bytes.len() / 2] ^= 1;
    assert!(SequenceModel::from_bytes(&bad).unwrap_err().to_string().contains("checksum"));
    assert!(SequenceModel::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(SequenceModel::from_bytes(b"not a model").unwrap_err().to_string().contains("magic"));
}

#[test]
fn training_is_deterministic_with_a_seed() {
    let (a, ..) = fit(9);
    let (b, ..) = fit(9);
    assert_eq!(a.to_bytes(), b.to_bytes());
    let (c, ..) = fit(10);
    assert_ne!(a.to_bytes(), c.to_bytes());
}

#[test]
fn burn_engine_trains_the_same_model_shape() {
    let params = SequenceParams { epochs: 2, ..(*small_params(4)).clone() }.check().unwrap();
    let (train, _) = synthetic(64, 1);
    let (valid, _) = synthetic(32, 2);
    let config = params.training_config(10, 2);
    let mut epochs = 0;
    let (model, history) =
        params.fit_forecaster(&config.forecaster, &train, &valid, &Engine::Burn(cpu()), &mut |_| epochs += 1).unwrap();
    assert_eq!(epochs, 2);
    assert!(history.best_valid_loss.is_finite());
    let out = model.forward(Tensor::from_data(TensorData::new(train.x.row(0).to_vec(), [1, STEPS, 10]), &cpu()));
    assert_eq!(out.dims(), [1, 3 * 2 * 3]);
}

#[test]
fn bad_parameters_and_bad_windows_are_named() {
    let bad = |p: SequenceParams| p.check().unwrap_err().to_string();
    assert!(bad(SequenceParams { hidden: 0, ..SequenceParams::default() }).contains("hidden"));
    assert!(bad(SequenceParams { quantiles: vec![0.9, 0.1], ..SequenceParams::default() }).contains("quantiles"));
    assert!(bad(SequenceParams { learning_rate: 0.0, ..SequenceParams::default() }).contains("learning_rate"));
    assert!(bad(SequenceParams { min_learning_rate: 1.0, ..SequenceParams::default() }).contains("min_learning_rate"));
    let params = small_params(1);
    let (train, _) = synthetic(8, 1);
    let config = params.training_config(7, 2); // the windows have 10 channels
    let err = params.fit_forecaster(&config.forecaster, &train, &train, &Engine::Kernel, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("10 channels"), "{err}");
    let empty = ForecastSet { x: Sequences::new(STEPS, 10), ..train.clone() };
    let config = params.training_config(10, 2);
    assert!(params.fit_forecaster(&config.forecaster, &train, &empty, &Engine::Kernel, &mut |_| {}).unwrap_err().to_string().contains("validation"));
}
