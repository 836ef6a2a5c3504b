//! The k-means fit of `omen profiles fit` on a matrix from a file, for bench/kmeans.sh:
//! `kmeans_bench ROWS.f64 D K SEED` reads little-endian f64 rows, fits k-means (k-means++
//! and Lloyd, as `omen profiles fit` does) and prints one JSON line: seconds, inertia (sum of squared
//! distances), iterations are linfa's own.

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, d, k, seed] = args.as_slice() else {
        eprintln!("usage: kmeans_bench ROWS.f64 D K SEED");
        std::process::exit(2);
    };
    let (d, k, seed): (usize, usize, u64) = (d.parse().unwrap(), k.parse().unwrap(), seed.parse().unwrap());
    let bytes = std::fs::read(path).unwrap();
    let x: Vec<f64> = bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect();
    let params = omen_models::kmeans::KMeansParams { k: Some(k), seed, ..Default::default() }.check().unwrap();
    let t0 = Instant::now();
    let c = params.fit_plain(&x, d).unwrap();
    let seconds = t0.elapsed().as_secs_f64();
    let labels = c.predict_batch(&x);
    let sse: f64 = x.chunks(d).zip(&labels).map(|(r, &l)| r.iter().zip(c.centroid(l)).map(|(a, b)| (a - b) * (a - b)).sum::<f64>()).sum();
    println!("{}", serde_json::json!({"impl": "omen", "rows": x.len() / d, "d": d, "k": k, "seconds": seconds, "inertia": sse}));
}
