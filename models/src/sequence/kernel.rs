//! The CPU LSTM: the forward pass (keeping what backpropagation needs) and backpropagation
//! through time, over plain `f32` slices.
//!
//! The efficient formulation: the input projection of every time step is **one** matrix product
//! (`[T·B, D] × [D, 4H]`), and each step adds **one** product of the previous hidden state with
//! the four gates' recurrent weights side by side (`[B, H] × [H, 4H]`). The weight gradients are
//! likewise one product each over all steps (`Xᵀ · dG`, `Hᵀ · dG`). Gates along `4H` are in the
//! order input, forget, output (sigmoid), cell candidate (tanh), so the sigmoid runs over one
//! contiguous `3H` block.
//!
//! Only the last hidden state feeds a head (the models are many-to-one), so backpropagation
//! starts from `dL/dh_T` alone.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

/// The weights of one LSTM layer, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmWeights {
    pub d_input: usize,
    pub d_hidden: usize,
    /// `[D, 4H]`.
    pub w_ih: Vec<f32>,
    /// `[H, 4H]`.
    pub w_hh: Vec<f32>,
    /// `[4H]`.
    pub bias: Vec<f32>,
}

/// Gradients of an [`LstmWeights`], same shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmGrads {
    pub w_ih: Vec<f32>,
    pub w_hh: Vec<f32>,
    pub bias: Vec<f32>,
}

impl LstmGrads {
    fn zeros(w: &LstmWeights) -> LstmGrads {
        LstmGrads { w_ih: vec![0.0; w.w_ih.len()], w_hh: vec![0.0; w.w_hh.len()], bias: vec![0.0; w.bias.len()] }
    }

    /// Adds `other` (a shard's gradients).
    pub fn add(&mut self, other: &LstmGrads) {
        for (a, b) in [(&mut self.w_ih, &other.w_ih), (&mut self.w_hh, &other.w_hh), (&mut self.bias, &other.bias)] {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
    }
}

/// What the forward pass keeps for the backward pass. Reused from batch to batch
/// ([`forward_into`]): its buffers are overwritten, not zeroed again (zeroing fresh pages was a
/// twentieth of the training time).
#[derive(Debug, Clone, Default)]
pub struct Trace {
    batch: usize,
    steps: usize,
    hidden_size: usize,
    /// `[T, B, 4H]`: activated gates.
    gates: Vec<f32>,
    /// `[T + 1, B, H]`: cell states, `c_0 = 0`.
    cells: Vec<f32>,
    /// `[T + 1, B, H]`: hidden states, `h_0 = 0`.
    hidden: Vec<f32>,
    /// `[T, B, 4H]`: the backward pass's gate gradients (scratch).
    dgates: Vec<f32>,
}

/// `v` with length `n`, keeping (not zeroing) what it held.
fn fit_len(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    } else {
        v.truncate(n);
    }
}

impl Trace {
    /// The last hidden state, `[B, H]`.
    pub fn last_hidden(&self) -> &[f32] {
        &self.hidden[self.steps * self.batch * self.hidden_size..]
    }
}

/// `c = a·b + beta·c` with `a [m, k]`, `b [k, n]`: small products (one sequence at inference) in
/// register blocks, the others through matrixmultiply's packed kernels.
fn matmul(a: &[f32], m: usize, k: usize, b: &[f32], n: usize, c: &mut [f32], beta: f32) {
    if m <= 4 || (k <= 16 && m <= 128) {
        // Blocks of 32 columns whose sums stay in registers over the whole of `k`: `c` is read
        // and written once, `b` streamed once. For one sequence (the recurrent product, and the
        // input projection with its few input channels) this beats matrixmultiply, whose packing
        // of `b` on every call cost more than the product; and a row-by-row update that reloads
        // `c` for every `k` took 1.5× as long.
        const W: usize = 32;
        for (a_row, c_row) in a.chunks_exact(k).zip(c.chunks_exact_mut(n)) {
            let mut j = 0;
            while j + W <= n {
                let mut acc = [0.0f32; W];
                if beta != 0.0 {
                    acc.copy_from_slice(&c_row[j..j + W]);
                }
                for (kk, &av) in a_row.iter().enumerate() {
                    let block = &b[kk * n + j..kk * n + j + W];
                    // plain indices over fixed lengths: unrolled with `acc` in registers (an
                    // iterator `zip` here was left out of line by the release build)
                    #[allow(clippy::needless_range_loop)]
                    for t in 0..W {
                        acc[t] += av * block[t];
                    }
                }
                c_row[j..j + W].copy_from_slice(&acc);
                j += W;
            }
            for (jj, cv) in c_row.iter_mut().enumerate().skip(j) {
                let mut s = if beta != 0.0 { *cv } else { 0.0 };
                for (kk, &av) in a_row.iter().enumerate() {
                    s += av * b[kk * n + jj];
                }
                *cv = s;
            }
        }
        return;
    }
    let a = ArrayView2::from_shape((m, k), a).expect("matmul: a shape");
    let b = ArrayView2::from_shape((k, n), b).expect("matmul: b shape");
    let mut c = ArrayViewMut2::from_shape((m, n), c).expect("matmul: c shape");
    general_mat_mul(1.0, &a, &b, beta, &mut c);
}

/// `c = aᵀ·b` with `a [k, m]`, `b [k, n]`.
fn matmul_at_b(a: &[f32], k: usize, m: usize, b: &[f32], n: usize, c: &mut [f32]) {
    let a = ArrayView2::from_shape((k, m), a).expect("matmul: a shape");
    let b = ArrayView2::from_shape((k, n), b).expect("matmul: b shape");
    let mut c = ArrayViewMut2::from_shape((m, n), c).expect("matmul: c shape");
    general_mat_mul(1.0, &a.t(), &b, 0.0, &mut c);
}

/// tanh as a rational function (the minimax approximation Eigen uses for `float`): within a few
/// ulp of `f32::tanh`, branch-free, so the gate loops vectorise (libm's `tanhf`/`expf` calls
/// were a third of the training time).
#[inline]
pub fn tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_7e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let mut p = x2 * A13 + A11;
    p = x2 * p + A9;
    p = x2 * p + A7;
    p = x2 * p + A5;
    p = x2 * p + A3;
    p = x2 * p + A1;
    p *= x;
    let mut q = x2 * B6 + B4;
    q = x2 * q + B2;
    q = x2 * q + B0;
    p / q
}

/// The logistic function through [`tanh`]: σ(x) = (1 + tanh(x/2)) / 2.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    0.5 + 0.5 * tanh(0.5 * x)
}

/// Reorders `[B, T, D]` (batch-major, as the models take it) to `[T, B, D]`.
pub fn time_major(x: &[f32], batch: usize, steps: usize, d: usize) -> Vec<f32> {
    let mut out = Vec::new();
    time_major_into(x, batch, steps, d, &mut out);
    out
}

/// [`time_major`] into a buffer kept from an earlier call.
pub fn time_major_into(x: &[f32], batch: usize, steps: usize, d: usize, out: &mut Vec<f32>) {
    fit_len(out, batch * steps * d);
    for r in 0..batch {
        for s in 0..steps {
            let from = (r * steps + s) * d;
            let to = (s * batch + r) * d;
            out[to..to + d].copy_from_slice(&x[from..from + d]);
        }
    }
}

/// The forward pass over `x` `[T, B, D]` (time-major), from zero states.
///
/// # Shapes
/// - `x`: `[steps, batch, d_input]`
/// - returns a [`Trace`] whose [`Trace::last_hidden`] is `[batch, d_hidden]`
pub fn forward(w: &LstmWeights, x: &[f32], steps: usize, batch: usize) -> Trace {
    let mut trace = Trace::default();
    forward_into(w, x, steps, batch, &mut trace);
    trace
}

/// [`forward`] into a [`Trace`] kept from an earlier call.
pub fn forward_into(w: &LstmWeights, x: &[f32], steps: usize, batch: usize, trace: &mut Trace) {
    let (d, h) = (w.d_input, w.d_hidden);
    let g4 = 4 * h;
    assert_eq!(x.len(), steps * batch * d, "lstm input: expected [steps, batch, d_input]");
    let bh = batch * h;
    trace.batch = batch;
    trace.steps = steps;
    trace.hidden_size = h;
    fit_len(&mut trace.gates, steps * batch * g4);
    fit_len(&mut trace.cells, (steps + 1) * bh);
    fit_len(&mut trace.hidden, (steps + 1) * bh);
    let Trace { gates, cells, hidden, .. } = trace;
    for row in gates.chunks_exact_mut(g4) {
        row.copy_from_slice(&w.bias);
    }
    // The input projection of every step at once.
    matmul(x, steps * batch, d, &w.w_ih, g4, gates, 1.0);
    cells[..bh].fill(0.0);
    hidden[..bh].fill(0.0);
    for s in 0..steps {
        let g = &mut gates[s * batch * g4..(s + 1) * batch * g4];
        let (h_done, h_rest) = hidden.split_at_mut((s + 1) * bh);
        let h_prev = &h_done[s * bh..];
        if s > 0 {
            // The four gates' recurrent terms in one product.
            matmul(h_prev, batch, h, &w.w_hh, g4, g, 1.0);
        }
        let (c_done, c_rest) = cells.split_at_mut((s + 1) * bh);
        let c_prev = &c_done[s * bh..];
        let c_next = &mut c_rest[..bh];
        let h_next = &mut h_rest[..bh];
        for r in 0..batch {
            let row = &mut g[r * g4..(r + 1) * g4];
            let (sig, cand) = row.split_at_mut(3 * h);
            sig.iter_mut().for_each(|v| *v = sigmoid(*v));
            cand.iter_mut().for_each(|v| *v = tanh(*v));
            let (i, rest) = sig.split_at(h);
            let (f, o) = rest.split_at(h);
            let cp = &c_prev[r * h..(r + 1) * h];
            let cn = &mut c_next[r * h..(r + 1) * h];
            let hn = &mut h_next[r * h..(r + 1) * h];
            for j in 0..h {
                let c = f[j] * cp[j] + i[j] * cand[j];
                cn[j] = c;
                hn[j] = o[j] * tanh(c);
            }
        }
    }
}

/// Backpropagation through time from `dh_last` = dL/dh_T `[B, H]`.
///
/// # Shapes
/// - `x`: `[steps, batch, d_input]`, the input `trace` was computed from
/// - `dh_last`: `[batch, d_hidden]`
pub fn backward(w: &LstmWeights, x: &[f32], trace: &mut Trace, dh_last: &[f32]) -> LstmGrads {
    let (d, h, batch, steps) = (w.d_input, w.d_hidden, trace.batch, trace.steps);
    let g4 = 4 * h;
    let bh = batch * h;
    let mut dgates = std::mem::take(&mut trace.dgates);
    fit_len(&mut dgates, steps * batch * g4);
    let mut dh = dh_last.to_vec();
    let mut dc = vec![0.0f32; bh];
    // W_hhᵀ `[4H, H]`, contiguous: matrixmultiply packs a strided operand several times slower.
    let mut w_hh_t = vec![0.0f32; g4 * h];
    for (k, row) in w.w_hh.chunks_exact(g4).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            w_hh_t[j * h + k] = v;
        }
    }
    for s in (0..steps).rev() {
        let g = &trace.gates[s * batch * g4..(s + 1) * batch * g4];
        let c_prev = &trace.cells[s * bh..(s + 1) * bh];
        let c_cur = &trace.cells[(s + 1) * bh..(s + 2) * bh];
        let dg = &mut dgates[s * batch * g4..(s + 1) * batch * g4];
        for r in 0..batch {
            let gr = &g[r * g4..(r + 1) * g4];
            let dgr = &mut dg[r * g4..(r + 1) * g4];
            for j in 0..h {
                let k = r * h + j;
                let (i, f, o, cand) = (gr[j], gr[h + j], gr[2 * h + j], gr[3 * h + j]);
                let tc = tanh(c_cur[k]);
                let dc_k = dc[k] + dh[k] * o * (1.0 - tc * tc);
                dgr[j] = dc_k * cand * i * (1.0 - i);
                dgr[h + j] = dc_k * c_prev[k] * f * (1.0 - f);
                dgr[2 * h + j] = dh[k] * tc * o * (1.0 - o);
                dgr[3 * h + j] = dc_k * i * (1.0 - cand * cand);
                dc[k] = dc_k * f;
            }
        }
        if s > 0 {
            // dh_{s-1} = dG_s · W_hhᵀ
            matmul(dg, batch, g4, &w_hh_t, h, &mut dh, 0.0);
        }
    }
    let mut grads = LstmGrads::zeros(w);
    matmul_at_b(x, steps * batch, d, &dgates, g4, &mut grads.w_ih);
    // h_{s-1} pairs with dG_s; h_0 = 0 adds nothing.
    if steps > 1 {
        matmul_at_b(&trace.hidden[bh..steps * bh], (steps - 1) * batch, h, &dgates[batch * g4..], g4, &mut grads.w_hh);
    }
    for row in dgates.chunks_exact(g4) {
        for (a, v) in grads.bias.iter_mut().zip(row) {
            *a += v;
        }
    }
    trace.dgates = dgates;
    grads
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_tanh_matches_libm() {
        let mut worst = 0.0f32;
        let mut x = -12.0f32;
        while x < 12.0 {
            worst = worst.max((super::tanh(x) - x.tanh()).abs());
            x += 1e-3;
        }
        assert!(worst < 5e-7, "{worst}");
    }
}
