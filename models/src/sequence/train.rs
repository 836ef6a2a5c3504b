//! Training: `SequenceParams -> check() -> ValidSequenceParams`, then `fit_forecaster` and
//! `fit_classifier`, each with Adam, a cosine learning-rate schedule, early stopping on the
//! validation split (the caller's, in time order), and a seed.
//!
//! Two engines compute the same gradients. [`Engine::Kernel`] (the default on CPU) runs the LSTM
//! through the CPU kernel ([`super::kernel`]): the forward pass and backpropagation through time
//! split over `threads` fixed shards of each batch, whose gradients are summed in shard order
//! (so a seed gives the same model however the threads are scheduled); the head and the loss go
//! through burn's autodiff, and Adam updates every parameter. [`Engine::Burn`] differentiates
//! [`SequenceLstm::forward`]'s tensor operations with burn's autodiff on any device (a GPU with
//! the `wgpu` or `cuda` feature).

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use super::kernel::{self, LstmGrads};
use super::model::{Classifier, ClassifierConfig, Forecaster, ForecasterConfig, Net, SequenceLstmConfig, SplitMix};
use crate::error::Error;
use crate::Result;

/// Hyperparameters of `omen train sequence` (checked by [`SequenceParams::check`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SequenceParams {
    /// LSTM hidden size.
    pub hidden: usize,
    /// Most passes over the training set (early stopping usually ends sooner).
    pub epochs: usize,
    pub batch_size: usize,
    /// Adam's learning rate at the start of the cosine schedule.
    pub learning_rate: f64,
    /// The learning rate at the end of the schedule.
    pub min_learning_rate: f64,
    /// Epochs without a better validation loss before training stops (the best epoch is kept).
    pub patience: usize,
    /// Clip each gradient to this L2 norm (0: no clipping).
    pub gradient_clip: f64,
    pub seed: u64,
    /// Forecast quantile levels, ascending, in (0, 1).
    pub quantiles: Vec<f64>,
    /// Steps forecast.
    pub horizon: usize,
    /// Shards of each batch computed in parallel (the CPU kernel); a seed gives the same model
    /// only with the same number of shards.
    pub threads: usize,
}

impl Default for SequenceParams {
    fn default() -> Self {
        SequenceParams {
            hidden: 64,
            epochs: 40,
            batch_size: 64,
            learning_rate: 1e-2,
            min_learning_rate: 1e-4,
            patience: 6,
            gradient_clip: 1.0,
            seed: 1,
            quantiles: vec![0.1, 0.5, 0.9],
            horizon: 10,
            threads: 2,
        }
    }
}

/// [`SequenceParams`] that passed [`SequenceParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSequenceParams(SequenceParams);

impl std::ops::Deref for ValidSequenceParams {
    type Target = SequenceParams;
    fn deref(&self) -> &SequenceParams {
        &self.0
    }
}

impl SequenceParams {
    pub fn check(&self) -> Result<ValidSequenceParams> {
        let positive = |field: &str, v: usize| if v == 0 { Err(Error::invalid(field, "must be at least 1")) } else { Ok(()) };
        positive("hidden", self.hidden)?;
        positive("epochs", self.epochs)?;
        positive("batch_size", self.batch_size)?;
        positive("horizon", self.horizon)?;
        positive("threads", self.threads)?;
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return Err(Error::invalid("learning_rate", format!("must be in (0, 1], got {}", self.learning_rate)));
        }
        if !(self.min_learning_rate >= 0.0 && self.min_learning_rate <= self.learning_rate) {
            return Err(Error::invalid(
                "min_learning_rate",
                format!("must be in [0, learning_rate = {}], got {}", self.learning_rate, self.min_learning_rate),
            ));
        }
        if !(self.gradient_clip >= 0.0 && self.gradient_clip.is_finite()) {
            return Err(Error::invalid("gradient_clip", format!("must be a finite number ≥ 0, got {}", self.gradient_clip)));
        }
        if self.quantiles.is_empty()
            || self.quantiles.iter().any(|q| !(*q > 0.0 && *q < 1.0))
            || self.quantiles.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(Error::invalid("quantiles", format!("must be ascending levels in (0, 1), got {:?}", self.quantiles)));
        }
        Ok(ValidSequenceParams(self.clone()))
    }
}

/// Which engine computes the gradients (see the module docs).
#[derive(Debug, Clone)]
pub enum Engine {
    /// The CPU kernel for the LSTM, burn for the head and the optimiser (on the NdArray device).
    Kernel,
    /// burn's autodiff through the tensor operations, on this device.
    Burn(Device),
}

/// Windows of `steps × channels` values, row-major: `[n, steps, channels]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sequences {
    pub steps: usize,
    pub channels: usize,
    pub x: Vec<f32>,
}

impl Sequences {
    pub fn new(steps: usize, channels: usize) -> Sequences {
        Sequences { steps, channels, x: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.x.len() / (self.steps * self.channels).max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn row(&self, i: usize) -> &[f32] {
        let w = self.steps * self.channels;
        &self.x[i * w..(i + 1) * w]
    }

    /// Appends one window (`steps × channels` values).
    pub fn push(&mut self, window: &[f32]) {
        assert_eq!(window.len(), self.steps * self.channels, "window of {} values", self.steps * self.channels);
        self.x.extend_from_slice(window);
    }

    fn gather(&self, rows: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows.len() * self.steps * self.channels);
        for &r in rows {
            out.extend_from_slice(self.row(r));
        }
        out
    }
}

/// Forecasting examples: windows, and per window the next `horizon` steps of each metric
/// (`[n, horizon, metrics]`, normalised) with a mask (1 where the step had data).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForecastSet {
    pub x: Sequences,
    pub metrics: usize,
    pub horizon: usize,
    pub y: Vec<f32>,
    pub mask: Vec<f32>,
}

/// Classification examples: windows and 0/1 labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelledSet {
    pub x: Sequences,
    pub label: Vec<f32>,
}

/// One epoch, as reported to the progress callback.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EpochReport {
    pub model: &'static str,
    pub epoch: usize,
    pub epochs: usize,
    pub train_loss: f64,
    pub valid_loss: f64,
    pub learning_rate: f64,
    pub seconds: f64,
    /// Whether this epoch's model is the best so far (the one kept).
    pub best: bool,
}

/// The course of one training run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TrainHistory {
    pub epochs: Vec<EpochReport>,
    /// 1-based epoch of the model kept.
    pub best_epoch: usize,
    pub best_valid_loss: f64,
    pub stopped_early: bool,
}

/// A training task: its examples, its loss in burn (for gradients) and in plain Rust (for the
/// validation loss, on the inference path).
trait Task: Sync {
    const NAME: &'static str;
    fn x(&self) -> &Sequences;
    /// The loss of `pred` `[rows, outputs]` on `rows`, as a burn scalar.
    fn loss(&self, pred: Tensor<2>, rows: &[usize], device: &Device) -> Tensor<1>;
    /// Mean loss of predictions `[n, outputs]` over every example.
    fn eval(&self, pred: &[f32]) -> f64;
}

struct ForecastTask<'a> {
    set: &'a ForecastSet,
    quantiles: Vec<f32>,
}

impl Task for ForecastTask<'_> {
    const NAME: &'static str = "forecaster";
    fn x(&self) -> &Sequences {
        &self.set.x
    }
    fn loss(&self, pred: Tensor<2>, rows: &[usize], device: &Device) -> Tensor<1> {
        let targets = self.set.horizon * self.set.metrics;
        let nq = self.quantiles.len();
        let mut y = Vec::with_capacity(rows.len() * targets);
        let mut m = Vec::with_capacity(rows.len() * targets);
        for &r in rows {
            y.extend_from_slice(&self.set.y[r * targets..(r + 1) * targets]);
            m.extend_from_slice(&self.set.mask[r * targets..(r + 1) * targets]);
        }
        let count: f32 = m.iter().sum();
        let b = rows.len();
        let y = Tensor::<3>::from_data(TensorData::new(y, [b, targets, 1]), device);
        let m = Tensor::<3>::from_data(TensorData::new(m, [b, targets, 1]), device);
        let q = Tensor::<3>::from_data(TensorData::new(self.quantiles.clone(), [1, 1, nq]), device);
        masked_pinball(pred.reshape([b, targets, nq]), y, m, q, count.max(1.0) * nq as f32)
    }
    fn eval(&self, pred: &[f32]) -> f64 {
        pinball_loss(pred, &self.set.y, &self.set.mask, &self.quantiles)
    }
}

/// Σ mask · max(q·e, (q − 1)·e) / `count`, e = y − pred.
///
/// # Shapes
/// - `pred`: `[batch, targets, quantiles]`; `y`, `mask`: `[batch, targets, 1]`; `q`: `[1, 1, quantiles]`
fn masked_pinball(pred: Tensor<3>, y: Tensor<3>, mask: Tensor<3>, q: Tensor<3>, count: f32) -> Tensor<1> {
    let e = y - pred;
    let loss = (e.clone() * q.clone()).max_pair(e * (q - 1.0));
    (loss * mask).sum().div_scalar(count)
}

/// The mean pinball loss over the present targets: `pred` `[n, targets, quantiles]`, `y` and
/// `mask` `[n, targets]`.
pub fn pinball_loss(pred: &[f32], y: &[f32], mask: &[f32], quantiles: &[f32]) -> f64 {
    let nq = quantiles.len();
    let mut total = 0.0f64;
    let mut count = 0.0f64;
    for (t, (&yv, &mv)) in y.iter().zip(mask).enumerate() {
        if mv == 0.0 {
            continue;
        }
        for (k, &q) in quantiles.iter().enumerate() {
            let e = (yv - pred[t * nq + k]) as f64;
            total += (q as f64 * e).max((q as f64 - 1.0) * e);
        }
        count += nq as f64;
    }
    if count > 0.0 { total / count } else { 0.0 }
}

struct ClassifyTask<'a> {
    set: &'a LabelledSet,
}

impl Task for ClassifyTask<'_> {
    const NAME: &'static str = "classifier";
    fn x(&self) -> &Sequences {
        &self.set.x
    }
    fn loss(&self, pred: Tensor<2>, rows: &[usize], device: &Device) -> Tensor<1> {
        let y: Vec<f32> = rows.iter().map(|&r| self.set.label[r]).collect();
        let y = Tensor::<2>::from_data(TensorData::new(y, [rows.len(), 1]), device);
        // Binary cross-entropy on logits, stable: max(z, 0) − z·y + ln(1 + e^(−|z|)).
        let z = pred;
        let loss = z.clone().clamp_min(0.0) - z.clone() * y + z.abs().neg().exp().log1p();
        loss.mean()
    }
    fn eval(&self, pred: &[f32]) -> f64 {
        let n = self.set.label.len().max(1) as f64;
        pred.iter()
            .zip(&self.set.label)
            .map(|(&z, &y)| {
                let z = z as f64;
                z.max(0.0) - z * y as f64 + (-z.abs()).exp().ln_1p()
            })
            .sum::<f64>()
            / n
    }
}

/// The inference path, shared by validation, batch evaluation and serving: the kernel's forward
/// pass over `rows` of `x` in blocks of up to 256 windows (in parallel), then the head.
///
/// # Shapes
/// - returns `[rows.len(), head.d_output]`
pub fn predict_rows(
    lstm: &kernel::LstmWeights,
    head: &super::model::DenseWeights,
    x: &Sequences,
    rows: &[usize],
) -> Vec<f32> {
    const BLOCK: usize = 256;
    let block = |rows: &[usize]| {
        let xb = kernel::time_major(&x.gather(rows), rows.len(), x.steps, x.channels);
        let trace = kernel::forward(lstm, &xb, x.steps, rows.len());
        head.apply(trace.last_hidden())
    };
    if rows.len() <= BLOCK {
        // One block on the calling thread: no hand-over to the pool for a single window.
        return block(rows);
    }
    rows.par_chunks(BLOCK).map(block).collect::<Vec<_>>().concat()
}

impl ValidSequenceParams {
    /// The burn training configuration of these parameters (saved beside the weights).
    pub fn training_config(&self, channels: usize, metrics: usize) -> super::SequenceTrainingConfig {
        let lstm = || SequenceLstmConfig::new(channels, self.hidden);
        super::SequenceTrainingConfig {
            forecaster: ForecasterConfig::new(lstm(), metrics, self.horizon, self.quantiles.clone()),
            classifier: ClassifierConfig::new(lstm()),
            optimizer: self.optimizer(),
            learning_rate: self.learning_rate,
            min_learning_rate: self.min_learning_rate,
            epochs: self.epochs,
            batch_size: self.batch_size,
            patience: self.patience,
            seed: self.seed,
            threads: self.threads,
        }
    }

    fn optimizer(&self) -> AdamConfig {
        let adam = AdamConfig::new().with_epsilon(1e-7);
        if self.gradient_clip > 0.0 {
            adam.with_grad_clipping(Some(burn::grad_clipping::GradientClippingConfig::Norm(self.gradient_clip as f32)))
        } else {
            adam
        }
    }

    /// Fits the forecaster on `train`, early-stopped on `valid`.
    pub fn fit_forecaster(
        &self,
        config: &ForecasterConfig,
        train: &ForecastSet,
        valid: &ForecastSet,
        engine: &Engine,
        progress: &mut dyn FnMut(&EpochReport),
    ) -> Result<(Forecaster, TrainHistory)> {
        check_set("train", &train.x, config.lstm.d_input)?;
        check_set("valid", &valid.x, config.lstm.d_input)?;
        let q: Vec<f32> = config.quantiles.iter().map(|&q| q as f32).collect();
        let device = engine_device(engine);
        let mut rng = SplitMix(self.seed ^ 0x666f_7265_6361_7374);
        let model = config.init(&device, &mut rng);
        self.fit_net(
            model,
            &ForecastTask { set: train, quantiles: q.clone() },
            &ForecastTask { set: valid, quantiles: q },
            engine,
            &mut rng,
            progress,
        )
    }

    /// Fits the failure classifier on `train`, early-stopped on `valid`.
    pub fn fit_classifier(
        &self,
        config: &ClassifierConfig,
        train: &LabelledSet,
        valid: &LabelledSet,
        engine: &Engine,
        progress: &mut dyn FnMut(&EpochReport),
    ) -> Result<(Classifier, TrainHistory)> {
        check_set("train", &train.x, config.lstm.d_input)?;
        check_set("valid", &valid.x, config.lstm.d_input)?;
        let device = engine_device(engine);
        let mut rng = SplitMix(self.seed ^ 0x636c_6173_7369_6679);
        let model = config.init(&device, &mut rng);
        self.fit_net(model, &ClassifyTask { set: train }, &ClassifyTask { set: valid }, engine, &mut rng, progress)
    }

    fn fit_net<M: Net + Module + Clone>(
        &self,
        mut model: M,
        train: &impl Task,
        valid: &impl Task,
        engine: &Engine,
        rng: &mut SplitMix,
        progress: &mut dyn FnMut(&EpochReport),
    ) -> Result<(M, TrainHistory)> {
        let device = engine_device(engine);
        let inner = device.clone().inner();
        let n = train.x().len();
        let batches = n.div_ceil(self.batch_size);
        let mut optim: ModuleOptimizer = self.optimizer().init();
        let mut schedule = CosineAnnealingLrSchedulerConfig::new(self.learning_rate, (self.epochs * batches).max(1))
            .with_min_lr(self.min_learning_rate)
            .init()
            .map_err(|e| Error::invalid("learning_rate", e.to_lowercase()))?;
        let mut order: Vec<usize> = (0..n).collect();
        let mut history = TrainHistory { best_valid_loss: f64::INFINITY, ..TrainHistory::default() };
        let mut best = model.clone();
        let mut since_best = 0;
        let valid_rows: Vec<usize> = (0..valid.x().len()).collect();
        let mut shards: Vec<Shard> = Vec::new();
        for epoch in 1..=self.epochs {
            let start = std::time::Instant::now();
            // Fisher-Yates with the model's generator.
            for i in (1..n).rev() {
                order.swap(i, rng.below(i + 1));
            }
            let mut train_loss = 0.0;
            let mut lr = self.learning_rate;
            for rows in order.chunks(self.batch_size) {
                let step_lr = schedule.step();
                lr = step_lr.base();
                let (loss, grads) = match engine {
                    Engine::Kernel => self.kernel_step(&model, train, rows, &device, &inner, &mut shards),
                    Engine::Burn(_) => {
                        let x = Tensor::<3>::from_data(
                            TensorData::new(train.x().gather(rows), [rows.len(), train.x().steps, train.x().channels]),
                            &device,
                        );
                        let loss = train.loss(model.forward_burn(x), rows, &device);
                        let value = scalar(&loss);
                        (value, GradientsParams::from_grads(loss.backward(), &model))
                    }
                };
                if !loss.is_finite() {
                    return Err(Error::invalid("learning_rate", format!("{} training diverged (loss {loss}); lower the learning rate", train_name(train))));
                }
                train_loss += loss * rows.len() as f64;
                model = optim.step(step_lr, model, grads);
            }
            let valid_loss = valid.eval(&predict_rows(&model.lstm().weights(), &model.head().weights(), valid.x(), &valid_rows));
            let improved = valid_loss < history.best_valid_loss - 1e-6 * history.best_valid_loss.abs().min(1e12);
            if improved || history.epochs.is_empty() {
                history.best_valid_loss = valid_loss;
                history.best_epoch = epoch;
                best = model.clone();
                since_best = 0;
            } else {
                since_best += 1;
            }
            let report = EpochReport {
                model: train_name(train),
                epoch,
                epochs: self.epochs,
                train_loss: train_loss / n.max(1) as f64,
                valid_loss,
                learning_rate: lr,
                seconds: start.elapsed().as_secs_f64(),
                best: since_best == 0,
            };
            progress(&report);
            history.epochs.push(report);
            if since_best >= self.patience && epoch < self.epochs {
                history.stopped_early = true;
                break;
            }
        }
        Ok((best.valid(), history))
    }

    /// One batch through the kernel: the LSTM's forward pass and backpropagation in shards, the
    /// head and loss in burn's autodiff; returns the loss and every parameter's gradient.
    fn kernel_step<M: Net + Module>(
        &self,
        model: &M,
        task: &impl Task,
        rows: &[usize],
        device: &Device,
        inner: &Device,
        shards: &mut Vec<Shard>,
    ) -> (f64, GradientsParams) {
        let x = task.x();
        let weights = model.lstm().weights();
        let h = weights.d_hidden;
        let per = rows.len().div_ceil(self.threads.min(rows.len()).max(1));
        shards.resize_with(rows.len().div_ceil(per), Shard::default);
        shards.par_iter_mut().zip(rows.par_chunks(per)).for_each(|(shard, part)| {
            shard.rows.clear();
            shard.rows.extend(part.iter().flat_map(|&r| x.row(r).iter().copied()));
            kernel::time_major_into(&shard.rows, part.len(), x.steps, x.channels, &mut shard.x);
            kernel::forward_into(&weights, &shard.x, x.steps, part.len(), &mut shard.trace);
        });
        let mut last = Vec::with_capacity(rows.len() * h);
        for shard in shards.iter() {
            last.extend_from_slice(shard.trace.last_hidden());
        }
        let hidden = Tensor::<2>::from_data(TensorData::new(last, [rows.len(), h]), device).require_grad();
        let loss = task.loss(model.head().forward(hidden.clone()), rows, device);
        let value = scalar(&loss);
        let mut grads = loss.backward();
        let dh = hidden.grad_remove(&mut grads).map(to_vec).unwrap_or_else(|| vec![0.0; rows.len() * h]);
        let parts: Vec<LstmGrads> = shards
            .par_iter_mut()
            .zip(dh.par_chunks(per * h))
            .map(|(shard, dh)| kernel::backward(&weights, &shard.x, &mut shard.trace, dh))
            .collect();
        let mut total = parts[0].clone();
        for p in &parts[1..] {
            total.add(p);
        }
        let mut params = GradientsParams::from_grads(grads, model);
        let lstm = model.lstm();
        let (d, g4) = (weights.d_input, 4 * h);
        params.register(lstm.w_ih.id, Tensor::<2>::from_data(TensorData::new(total.w_ih, [d, g4]), inner));
        params.register(lstm.w_hh.id, Tensor::<2>::from_data(TensorData::new(total.w_hh, [h, g4]), inner));
        params.register(lstm.bias.id, Tensor::<1>::from_data(TensorData::new(total.bias, [g4]), inner));
        (value, params)
    }
}

/// One shard's buffers, kept from batch to batch.
#[derive(Debug, Default)]
struct Shard {
    /// Its windows, batch-major.
    rows: Vec<f32>,
    /// The same, time-major.
    x: Vec<f32>,
    trace: kernel::Trace,
}

fn train_name<T: Task>(_: &T) -> &'static str {
    T::NAME
}

fn scalar(t: &Tensor<1>) -> f64 {
    t.clone().into_data().try_into_vec_as::<f64>().ok().and_then(|v| v.first().copied()).unwrap_or(f64::NAN)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 tensor")
}

fn check_set(name: &str, x: &Sequences, channels: usize) -> Result<()> {
    if x.channels != channels {
        return Err(Error::invalid(name, format!("windows have {} channels, the model takes {channels}", x.channels)));
    }
    if name == "train" && x.is_empty() {
        return Err(Error::invalid(name, "no training windows"));
    }
    if name == "valid" && x.is_empty() {
        return Err(Error::invalid(name, "no validation windows (early stopping needs some)"));
    }
    Ok(())
}

/// The device an engine trains on: autodiff over NdArray for the kernel, the given one otherwise.
#[allow(deprecated)]
pub fn engine_device(engine: &Engine) -> Device {
    match engine {
        Engine::Kernel => Device::ndarray().autodiff(),
        Engine::Burn(d) => d.clone().autodiff(),
    }
}
