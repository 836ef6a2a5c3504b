//! The Rust side of `bench/lstm.sh`: epoch time of the same LSTM (D inputs, H hidden, a dense
//! head of O outputs, the pinball loss over 3 quantiles, Adam at a constant 1e-3, batch B) on
//! the data `bench/lstm_anchor.py gen` wrote, three ways:
//!
//! - `kernel`: omen's `Engine::Kernel` (the CPU LSTM kernel in shards, burn for the head and Adam);
//! - `fused`: omen's `Engine::Burn` on NdArray: burn's autodiff through `SequenceLstm::forward`
//!   (one product for the input projection, one per step for the four gates);
//! - `builtin`: burn's own `nn::Lstm` (a `Linear` per gate for the input and for the hidden state).
//!
//! Then `infer`: one 60-step window through the serving path (kernel forward and head), mean
//! time per window (run it with `RAYON_NUM_THREADS=1` for one core).
//!
//! Usage: `lstm_bench MODE DIR N T D O H B EPOCHS [THREADS]`

use std::time::Instant;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, LstmConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use omen_models::sequence::{Engine, ForecastSet, SequenceParams, Sequences, predict_rows};

/// CPU seconds (user + system) of this process so far, from `/proc/self/stat` (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // the fields after the command name (which may hold spaces) close with ')'
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the ')'; 100 ticks a second
    (ticks(11) + ticks(12)) / 100.0
}

fn read_f32(path: &str) -> Vec<f32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[derive(Module, Debug)]
struct Builtin {
    lstm: burn::nn::Lstm,
    head: Linear,
}

#[allow(deprecated)]
fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 10 {
        eprintln!("usage: lstm_bench kernel|fused|builtin|infer DIR N T D O H B EPOCHS [THREADS]");
        std::process::exit(2);
    }
    let mode = a[1].as_str();
    let dir = &a[2];
    let n: Vec<usize> = a[3..10].iter().map(|s| s.parse().expect("a number")).collect();
    let (n, t, d, o, h, bs, epochs) = (n[0], n[1], n[2], n[3], n[4], n[5], n[6]);
    let threads: usize = a.get(10).and_then(|s| s.parse().ok()).unwrap_or(2);
    let x = read_f32(&format!("{dir}/x.f32"));
    let y = read_f32(&format!("{dir}/y.f32"));
    let nq = 3;
    let horizon = o / nq;
    assert!(x.len() >= (n + 64) * t * d && y.len() >= (n + 64) * horizon, "the data files are too short for N = {n}");
    let set = |lo: usize, hi: usize| ForecastSet {
        x: Sequences { steps: t, channels: d, x: x[lo * t * d..hi * t * d].to_vec() },
        metrics: 1,
        horizon,
        y: y[lo * horizon..hi * horizon].to_vec(),
        mask: vec![1.0; (hi - lo) * horizon],
    };
    let params = SequenceParams {
        hidden: h,
        epochs,
        batch_size: bs,
        learning_rate: 1e-3,
        min_learning_rate: 1e-3,
        patience: usize::MAX,
        gradient_clip: 0.0,
        seed: 1,
        quantiles: vec![0.1, 0.5, 0.9],
        horizon,
        threads,
    }
    .check()
    .expect("parameters");
    let config = params.training_config(d, 1);
    let (train, valid) = (set(0, n), set(n, n + 64));
    match mode {
        "kernel" | "fused" | "infer" => {
            let engine = if mode == "fused" { Engine::Burn(Device::ndarray()) } else { Engine::Kernel };
            let epochs_run = if mode == "infer" { 1 } else { epochs };
            let params = SequenceParams { epochs: epochs_run, ..(*params).clone() }.check().expect("parameters");
            let mut cpu = cpu_seconds();
            let (model, _) = params
                .fit_forecaster(&config.forecaster, &train, &valid, &engine, &mut |r| {
                    let now = cpu_seconds();
                    if mode != "infer" {
                        println!("omen-{mode} epoch {} {:.3} s cpu {:.2} s loss {:.4}", r.epoch, r.seconds, now - cpu, r.train_loss);
                    }
                    cpu = now;
                })
                .expect("training");
            if mode == "infer" {
                let (lstm, head) = (model.lstm.weights(), model.head.weights());
                let one = Sequences { steps: t, channels: d, x: x[..t * d].to_vec() };
                let reps = 5000;
                let mut sink = 0.0;
                for _ in 0..200 {
                    sink += predict_rows(&lstm, &head, &one, &[0])[0];
                }
                let s = Instant::now();
                for _ in 0..reps {
                    sink += predict_rows(&lstm, &head, &one, &[0])[0];
                }
                let us = s.elapsed().as_secs_f64() * 1e6 / reps as f64;
                println!("omen infer {us:.1} us per {t}-step window ({sink:.1})");
            }
        }
        "builtin" => builtin(&train, t, d, o, h, bs, epochs),
        _ => panic!("unknown mode {mode}"),
    }
}

/// burn's `nn::Lstm` and `nn::Linear` with the same loss, optimiser and batches.
#[allow(deprecated)]
fn builtin(train: &ForecastSet, t: usize, d: usize, o: usize, h: usize, bs: usize, epochs: usize) {
    let device = Device::ndarray().autodiff();
    let mut model = Builtin { lstm: LstmConfig::new(d, h, true).init(&device), head: LinearConfig::new(h, o).init(&device) };
    let mut optim = AdamConfig::new().with_epsilon(1e-7).init();
    let nq = 3;
    let horizon = o / nq;
    let q: Vec<f32> = (0..o).map(|k| [0.1, 0.5, 0.9][k % nq]).collect();
    let q = Tensor::<2>::from_data(TensorData::new(q, [1, o]), &device);
    let n = train.x.len();
    for epoch in 1..=epochs {
        let start = Instant::now();
        let cpu = cpu_seconds();
        let mut total = 0.0;
        for b in 0..n.div_ceil(bs) {
            let rows = b * bs..((b + 1) * bs).min(n);
            let m = rows.len();
            let xb = train.x.x[rows.start * t * d..rows.end * t * d].to_vec();
            let mut yb = Vec::with_capacity(m * o);
            for r in rows {
                for k in 0..o {
                    yb.push(train.y[r * horizon + k / nq]);
                }
            }
            let xt = Tensor::<3>::from_data(TensorData::new(xb, [m, t, d]), &device);
            let yt = Tensor::<2>::from_data(TensorData::new(yb, [m, o]), &device);
            let (_, state) = model.lstm.forward(xt, None);
            let e = yt - model.head.forward(state.hidden);
            let loss = (e.clone() * q.clone()).max_pair(e * (q.clone() - 1.0)).mean();
            total += loss.clone().into_scalar::<f32>() as f64 * m as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-3, model, grads);
        }
        println!(
            "burn-builtin epoch {epoch} {:.3} s cpu {:.2} s loss {:.4}",
            start.elapsed().as_secs_f64(),
            cpu_seconds() - cpu,
            total / n as f64
        );
    }
}
