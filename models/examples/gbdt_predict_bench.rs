//! GBDT prediction timings: `gbdt_predict_bench [CACHE]` trains a seeded binary model of 300
//! trees × 31 leaves on a generated 100k × 40 table (non-linear signal, 5 % missing values; the
//! model is read from CACHE when that file exists, and written there otherwise), then times
//! single-row prediction over 10,000 different held-out rows and batch prediction of 100k rows:
//! the compiled forest's portable walk (the walk before the AVX-512 one, which machines without
//! AVX-512 still take) and `predict_raw` (the AVX-512 walk where the CPU has it), side by side in one run,
//! each checked bit for bit against the plain walk summed in its order.

use std::time::Instant;

use omen_models::gbdt::{Compiled, Gbdt, GbdtParams, Matrix, Tree};
use rayon::prelude::*;

/// splitmix64 → uniform [0, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-300), self.next());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

const D: usize = 40;

/// n rows × 40 features, the signal of `bench/gbdt_anchor.py gen`; labels 0/1.
fn data(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut r = Rng(seed);
    let mut x = Vec::with_capacity(n * D);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let v: Vec<f64> = (0..D).map(|_| r.normal()).collect();
        let s = 1.2 * v[0] * v[1] + (2.0 * v[2]).sin() * 1.5 + if v[3] > 0.7 { 1.5 } else { -0.3 } + 0.8 * v[4].abs()
            - 0.6 * v[5] * v[5]
            + if v[7] > 0.0 { 0.5 * v[6] } else { 0.0 }
            - 1.3;
        y.push(if r.next() < 1.0 / (1.0 + (-3.0 * s).exp()) { 1.0 } else { 0.0 });
        x.extend(v.into_iter().map(|a| if r.next() < 0.05 { f64::NAN } else { a }));
    }
    (x, y)
}

/// The sum of the plain tree walk in the order `lanes` names (`Compiled::lanes`: lane by lane).
fn reference(trees: &[Tree], lanes: &[Vec<usize>], x: &[f64]) -> f64 {
    let lane = |l: &Vec<usize>| l.iter().fold(0.0, |s, &i| s + trees[i].leaf_value[trees[i].leaf(x)]);
    lanes.iter().fold(0.0, |s, l| s + lane(l))
}

/// Seconds per call of `f` over `rows`: the fastest of `passes` passes over every row (the
/// machine may be shared: the fastest pass is the one least disturbed).
fn per_row(rows: &[&[f64]], passes: usize, mut f: impl FnMut(&[f64]) -> f64) -> f64 {
    let mut sink = 0.0;
    let mut best = f64::INFINITY;
    for _ in 0..passes {
        let t = Instant::now();
        for r in rows {
            sink += f(std::hint::black_box(r));
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    best / rows.len() as f64
}

fn main() {
    let cache = std::env::args().nth(1);
    let (x, y) = data(100_000, 1);
    let model = match cache.as_deref().and_then(|p| std::fs::read(p).ok()) {
        Some(b) => Gbdt::from_bytes(&b, None).unwrap(),
        None => {
            let params = GbdtParams { num_iterations: 300, num_leaves: 31, learning_rate: 0.1, seed: 1, ..Default::default() };
            let names = (0..D).map(|i| format!("f{i:02}")).collect();
            let t = Instant::now();
            let (m, _) = params.check().unwrap().fit(Matrix::new(&x, D), &y, None, names).unwrap();
            eprintln!("trained in {:.1} s", t.elapsed().as_secs_f64());
            if let Some(p) = &cache {
                std::fs::write(p, m.to_bytes()).unwrap();
            }
            m
        }
    };
    let trees = &model.trees;
    let depths: Vec<usize> = trees.iter().map(Tree::depth).collect();
    let (xt, _) = data(100_000, 2);
    let test = Matrix::new(&xt, D);
    let rows: Vec<&[f64]> = (0..10_000).map(|i| test.row(i)).collect();
    let path: f64 = rows[..1000].iter().map(|r| trees.iter().map(|t| path_len(t, r)).sum::<usize>() as f64).sum::<f64>() / 1000.0;
    println!(
        "{} trees, leaves {}..{}, depth {}..{} (mean {:.1}); path per row {:.0} nodes; {} lanes; AVX-512 walk: {}",
        trees.len(),
        trees.iter().map(Tree::num_leaves).min().unwrap(),
        trees.iter().map(Tree::num_leaves).max().unwrap(),
        depths.iter().min().unwrap(),
        depths.iter().max().unwrap(),
        depths.iter().sum::<usize>() as f64 / depths.len() as f64,
        path,
        model.summation_lanes().len(),
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl"),
    );

    // The walk before the AVX-512 one, which CPUs without AVX-512 still take.
    let old = Compiled::portable(trees);
    let init = model.init_score;
    let (old_lanes, lanes) = (old.lanes(), model.summation_lanes());
    for r in &rows {
        assert_eq!((init + reference(trees, &old_lanes, r)).to_bits(), (init + old.sum(r)).to_bits());
        assert_eq!((init + reference(trees, &lanes, r)).to_bits(), model.predict_raw(r).to_bits());
    }
    // The same row 10,000 times (as `omen train --json` measures it: a branch predictor that
    // has learnt the row's paths).
    let same: Vec<&[f64]> = vec![rows[0]; 10_000];
    let batch = |f: &(dyn Fn(&[f64]) -> f64 + Sync)| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                let v: Vec<f64> = (0..test.n_rows).into_par_iter().with_min_len(1024).map(|i| f(test.row(i))).collect();
                std::hint::black_box(v);
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    for round in 0..3 {
        let o = per_row(&rows, 20, |r| old.sum(r)) * 1e6;
        let n = per_row(&rows, 20, |r| model.predict_raw(r)) * 1e6;
        let o1 = per_row(&same, 20, |r| old.sum(r)) * 1e6;
        let n1 = per_row(&same, 20, |r| model.predict_raw(r)) * 1e6;
        let ob = batch(&|r| old.sum(r));
        let nb = batch(&|r| model.predict_raw(r));
        println!(
            "round {round}: µs per row, 10,000 different rows: before {o:.3}, predict_raw {n:.3}; one row repeated: before {o1:.3}, predict_raw {n1:.3}; batch of 100,000 rows ({} threads): before {ob:.4} s, predict_raw {nb:.4} s",
            rayon::current_num_threads()
        );
    }
}

/// Nodes on the path of `x` through `t` (internal nodes passed).
fn path_len(t: &Tree, x: &[f64]) -> usize {
    if t.split_feature.is_empty() {
        return 0;
    }
    let (mut node, mut n) = (0i32, 0);
    while node >= 0 {
        let i = node as usize;
        let v = x[t.split_feature[i] as usize];
        let left = if v.is_nan() { t.default_left[i] } else { v <= t.threshold[i] };
        node = if left { t.left[i] } else { t.right[i] };
        n += 1;
    }
    n
}
