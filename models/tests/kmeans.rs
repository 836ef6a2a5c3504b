//! omen's k-means against linfa-clustering's (the reference), determinism, the choice of `k` by
//! the silhouette, and bad input.

use linfa::prelude::*;
use linfa::DatasetBase;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::ArrayView2;
use omen_models::kmeans::{KMeansParams, silhouette};
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;

/// `n` rows of `d` columns around `centres` well-separated centres, seeded.
fn blobs(n: usize, d: usize, centres: usize, seed: u64) -> Vec<f64> {
    let mut s = seed | 1;
    let mut u = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut normal = move || {
        let (a, b) = (u().max(1e-12), u());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    };
    let c: Vec<f64> = (0..centres * d).map(|_| 6.0 * normal()).collect();
    let mut x = Vec::with_capacity(n * d);
    for i in 0..n {
        let k = i % centres;
        for j in 0..d {
            x.push(c[k * d + j] + normal());
        }
    }
    x
}

fn sse(x: &[f64], d: usize, c: &omen_models::kmeans::Clustering) -> f64 {
    x.chunks(d).map(|r| { let l = c.predict(r); r.iter().zip(c.centroid(l)).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() }).sum()
}

#[test]
fn inertia_matches_linfa_clustering() {
    for (n, d, k, seed) in [(3000, 4, 5, 1), (5000, 8, 8, 2), (2000, 16, 3, 3)] {
        let x = blobs(n, d, k, seed);
        let ours = KMeansParams { k: Some(k), seed, ..Default::default() }.check().unwrap().fit(&x, d).unwrap();
        let view = ArrayView2::from_shape((n, d), &x).unwrap();
        let theirs = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(seed))
            .init_method(KMeansInit::KMeansPlusPlus)
            .n_runs(5)
            .fit(&DatasetBase::from(view))
            .unwrap();
        let theirs_sse = theirs.inertia() * n as f64;
        let ours_sse = sse(&x, d, &ours);
        assert!((ours.inertia * n as f64 - ours_sse).abs() < 1e-6 * ours_sse, "inertia is the mean squared distance");
        assert!(ours_sse <= theirs_sse * 1.01, "n {n} d {d} k {k}: omen {ours_sse}, linfa (best of 5) {theirs_sse}");
    }
}

#[test]
fn the_same_seed_gives_the_same_bits() {
    let x = blobs(20_000, 6, 7, 9);
    let p = KMeansParams { k: Some(7), seed: 4, ..Default::default() }.check().unwrap();
    let a = p.fit(&x, 6).unwrap();
    let b = p.fit(&x, 6).unwrap();
    assert_eq!(a, b);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let c = pool.install(|| p.fit(&x, 6).unwrap());
    assert_eq!(a.centroids, c.centroids, "independent of the thread count");
}

#[test]
fn k_is_chosen_by_the_silhouette_and_bad_input_is_refused() {
    let x = blobs(3000, 5, 4, 5);
    let c = KMeansParams::default().check().unwrap().fit(&x, 5).unwrap();
    assert_eq!(c.k, 4, "{:?}", c.candidates);
    assert!(c.silhouette.unwrap() > 0.5);
    let labels = c.predict_batch(&x);
    assert!((silhouette(&x[..500 * 5], 5, &labels[..500], 4) - c.silhouette.unwrap()).abs() < 0.2);
    let same = vec![1.0; 50 * 3];
    let e = KMeansParams::default().check().unwrap().fit(&same, 3).unwrap_err();
    assert!(e.to_string().contains("single distinct point"), "{e}");
    let e = KMeansParams { k: Some(3), ..Default::default() }.check().unwrap().fit(&x[..2 * 5], 5).unwrap_err();
    assert!(e.to_string().contains("only 2 distinct points"), "{e}");
    assert!(KMeansParams { k: Some(0), ..Default::default() }.check().is_err());
    assert!(KMeansParams::default().check().unwrap().fit(&[], 3).is_err());
    assert!(KMeansParams { k: Some(2), ..Default::default() }.check().unwrap().fit(&[f64::NAN; 6], 3).is_err());
}
