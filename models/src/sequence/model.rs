//! The burn modules: [`SequenceLstm`] (the efficient LSTM layer), a dense head, the
//! [`Forecaster`] and the [`Classifier`], each with its `#[derive(Config)]`.
//!
//! burn 0.22 carries the backend in the [`Device`] (NdArray by default here; `wgpu` and `cuda`
//! are cargo features of `omen-models`), so the modules have no backend type parameter: the
//! same module trains on any device burn was built with.

use burn::config::Config;
use burn::module::{Module, Param, ParamId};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};

use super::kernel::LstmWeights;

/// SplitMix64: the models' own seeded generator, so that a seed gives the same initial weights
/// on every platform and whatever burn's global generator did before.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[-scale, scale)`.
    pub fn uniform(&mut self, scale: f32) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
    }

    /// Uniform index below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * n as f64) as usize % n.max(1)
    }
}

fn param<const D: usize>(rng: &mut SplitMix, values: Vec<f32>, shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    // Deterministic ids: the same seed gives byte-identical records.
    let mut p = Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device));
    p.id = ParamId::from(rng.next_u64());
    p
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 tensor")
}

/// An LSTM layer: input size and hidden size.
#[derive(Config, Debug)]
pub struct SequenceLstmConfig {
    pub d_input: usize,
    pub d_hidden: usize,
}

/// The efficient LSTM layer: the four gates' weights side by side (`[D, 4H]` for the input,
/// `[H, 4H]` for the recurrence; gate order input, forget, output, cell candidate), so a step is
/// one product. Zero initial states; many-to-one (the last hidden state is the output).
#[derive(Module, Debug)]
pub struct SequenceLstm {
    pub w_ih: Param<Tensor<2>>,
    pub w_hh: Param<Tensor<2>>,
    pub bias: Param<Tensor<1>>,
    pub d_hidden: usize,
}

impl SequenceLstmConfig {
    /// Keras' initialisation, which trains faster than ±1/√H here: the input weights Glorot-
    /// uniform, each gate's recurrent `H × H` block orthogonal, biases 0 but the forget gate's 1
    /// (Jozefowicz et al. 2015); all from `rng`.
    pub fn init(&self, device: &Device, rng: &mut SplitMix) -> SequenceLstm {
        let (d, h) = (self.d_input, self.d_hidden);
        let g = glorot(d, 4 * h);
        let w_ih = (0..d * 4 * h).map(|_| rng.uniform(g)).collect();
        let mut w_hh = vec![0.0f32; h * 4 * h];
        for gate in 0..4 {
            let q = orthogonal(h, rng);
            for r in 0..h {
                w_hh[r * 4 * h + gate * h..r * 4 * h + (gate + 1) * h].copy_from_slice(&q[r * h..(r + 1) * h]);
            }
        }
        let bias = (0..4 * h).map(|j| if (h..2 * h).contains(&j) { 1.0 } else { 0.0 }).collect();
        SequenceLstm {
            w_ih: param(rng, w_ih, [d, 4 * h], device),
            w_hh: param(rng, w_hh, [h, 4 * h], device),
            bias: param(rng, bias, [4 * h], device),
            d_hidden: h,
        }
    }
}

/// Glorot-uniform limit √(6 / (fan_in + fan_out)).
fn glorot(fan_in: usize, fan_out: usize) -> f32 {
    (6.0 / (fan_in + fan_out) as f32).sqrt()
}

/// A random `n × n` orthogonal matrix (row-major): Gram-Schmidt (twice, for stability) on
/// uniform random rows.
fn orthogonal(n: usize, rng: &mut SplitMix) -> Vec<f32> {
    let mut m: Vec<f64> = (0..n * n).map(|_| rng.uniform(1.0) as f64).collect();
    for i in 0..n {
        for _ in 0..2 {
            for j in 0..i {
                let dot: f64 = (0..n).map(|k| m[i * n + k] * m[j * n + k]).sum();
                for k in 0..n {
                    m[i * n + k] -= dot * m[j * n + k];
                }
            }
        }
        let norm = (0..n).map(|k| m[i * n + k] * m[i * n + k]).sum::<f64>().sqrt().max(1e-12);
        for k in 0..n {
            m[i * n + k] /= norm;
        }
    }
    m.into_iter().map(|v| v as f32).collect()
}

impl SequenceLstm {
    /// The last hidden state, computed with burn tensor operations (any device, differentiable by
    /// burn's autodiff), the four gates in one product per step. Unlike the CPU kernel, each
    /// step's input is projected on its own: slicing one projection of all steps per step makes
    /// burn's autodiff materialise a gradient of the whole projection for every slice, O(T²)
    /// (98 s an epoch against 14 s for burn's own `Lstm` in BENCHMARKS.md's setting).
    ///
    /// # Shapes
    /// - `x`: `[batch, steps, d_input]`
    /// - returns `[batch, d_hidden]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        let [b, t, d] = x.dims();
        let h = self.d_hidden;
        let device = x.device();
        let (w_ih, w_hh, bias) = (self.w_ih.val(), self.w_hh.val(), self.bias.val().unsqueeze_dim(0));
        let mut hidden = Tensor::<2>::zeros([b, h], &device);
        let mut cell = Tensor::<2>::zeros([b, h], &device);
        for (s, input) in x.chunk(t, 1).into_iter().enumerate() {
            let projected = input.reshape([b, d]).matmul(w_ih.clone()) + bias.clone();
            let gates = if s == 0 { projected } else { projected + hidden.matmul(w_hh.clone()) };
            let ifo = sigmoid(gates.clone().narrow(1, 0, 3 * h));
            let candidate = gates.narrow(1, 3 * h, h).tanh();
            let i = ifo.clone().narrow(1, 0, h);
            let f = ifo.clone().narrow(1, h, h);
            let o = ifo.narrow(1, 2 * h, h);
            cell = f * cell + i * candidate;
            hidden = o * cell.clone().tanh();
        }
        hidden
    }

    /// The weights as plain arrays, for the CPU kernel.
    pub fn weights(&self) -> LstmWeights {
        let [d, _] = self.w_ih.dims();
        LstmWeights {
            d_input: d,
            d_hidden: self.d_hidden,
            w_ih: to_vec(self.w_ih.val()),
            w_hh: to_vec(self.w_hh.val()),
            bias: to_vec(self.bias.val()),
        }
    }
}

/// A dense layer `x · W + b` (`W` is `[d_input, d_output]`).
#[derive(Module, Debug)]
pub struct Dense {
    pub weight: Param<Tensor<2>>,
    pub bias: Param<Tensor<1>>,
}

/// The weights of a [`Dense`] as plain arrays.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseWeights {
    pub d_input: usize,
    pub d_output: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl DenseWeights {
    /// `x [n, d_input]` to `[n, d_output]`.
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(x.len() / self.d_input.max(1) * self.d_output);
        for row in x.chunks_exact(self.d_input) {
            let start = out.len();
            out.extend_from_slice(&self.bias);
            let o = &mut out[start..];
            for (&xv, w_row) in row.iter().zip(self.weight.chunks_exact(self.d_output)) {
                for (ov, &wv) in o.iter_mut().zip(w_row) {
                    *ov += xv * wv;
                }
            }
        }
        out
    }
}

impl Dense {
    /// Glorot-uniform weights, bias 0.
    pub fn init(d_input: usize, d_output: usize, device: &Device, rng: &mut SplitMix) -> Dense {
        let k = glorot(d_input, d_output);
        let w = (0..d_input * d_output).map(|_| rng.uniform(k)).collect();
        Dense { weight: param(rng, w, [d_input, d_output], device), bias: param(rng, vec![0.0; d_output], [d_output], device) }
    }

    /// # Shapes
    /// - `x`: `[batch, d_input]`
    /// - returns `[batch, d_output]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.val()) + self.bias.val().unsqueeze_dim(0)
    }

    pub fn weights(&self) -> DenseWeights {
        let [d_input, d_output] = self.weight.dims();
        DenseWeights { d_input, d_output, weight: to_vec(self.weight.val()), bias: to_vec(self.bias.val()) }
    }
}

/// The forecaster: an LSTM over the window, then the quantiles of each metric's next `horizon`
/// steps.
#[derive(Config, Debug)]
pub struct ForecasterConfig {
    pub lstm: SequenceLstmConfig,
    /// Metrics forecast (the layout's).
    pub metrics: usize,
    /// Steps forecast.
    pub horizon: usize,
    /// Quantile levels, ascending, in (0, 1).
    pub quantiles: Vec<f64>,
}

impl ForecasterConfig {
    /// Outputs: `[horizon, metrics, quantiles]` flattened.
    pub fn outputs(&self) -> usize {
        self.horizon * self.metrics * self.quantiles.len()
    }

    pub fn init(&self, device: &Device, rng: &mut SplitMix) -> Forecaster {
        let lstm = self.lstm.init(device, rng);
        let head = Dense::init(self.lstm.d_hidden, self.outputs(), device, rng);
        Forecaster { lstm, head }
    }
}

#[derive(Module, Debug)]
pub struct Forecaster {
    pub lstm: SequenceLstm,
    pub head: Dense,
}

impl Forecaster {
    /// # Shapes
    /// - `x`: `[batch, steps, channels]`
    /// - returns `[batch, horizon · metrics · quantiles]` (normalised units)
    pub fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        self.head.forward(self.lstm.forward(x))
    }
}

/// The failure classifier: an LSTM over the canary window, then one logit.
#[derive(Config, Debug)]
pub struct ClassifierConfig {
    pub lstm: SequenceLstmConfig,
}

impl ClassifierConfig {
    pub fn init(&self, device: &Device, rng: &mut SplitMix) -> Classifier {
        let lstm = self.lstm.init(device, rng);
        let head = Dense::init(self.lstm.d_hidden, 1, device, rng);
        Classifier { lstm, head }
    }
}

#[derive(Module, Debug)]
pub struct Classifier {
    pub lstm: SequenceLstm,
    pub head: Dense,
}

impl Classifier {
    /// # Shapes
    /// - `x`: `[batch, steps, channels]`
    /// - returns `[batch, 1]`: the logit of failure
    pub fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        self.head.forward(self.lstm.forward(x))
    }
}

/// What the training loop needs of a model: its LSTM and its head.
pub trait Net: Module {
    fn lstm(&self) -> &SequenceLstm;
    fn head(&self) -> &Dense;
    /// # Shapes
    /// - `x`: `[batch, steps, channels]`; returns `[batch, outputs]`
    fn forward_burn(&self, x: Tensor<3>) -> Tensor<2>;
}

impl Net for Forecaster {
    fn lstm(&self) -> &SequenceLstm {
        &self.lstm
    }
    fn head(&self) -> &Dense {
        &self.head
    }
    fn forward_burn(&self, x: Tensor<3>) -> Tensor<2> {
        self.forward(x)
    }
}

impl Net for Classifier {
    fn lstm(&self) -> &SequenceLstm {
        &self.lstm
    }
    fn head(&self) -> &Dense {
        &self.head
    }
    fn forward_burn(&self, x: Tensor<3>) -> Tensor<2> {
        self.forward(x)
    }
}
