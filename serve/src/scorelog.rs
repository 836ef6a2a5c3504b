//! The score log: every answer appended to `scores/date=YYYY-MM-DD/` in the store, in batches,
//! off the request path. A bounded buffer between the two: when it is full an answer is dropped
//! and counted (`omen_scorelog_dropped_total`), never waited for.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use omen_features::Store;
use polars::prelude::*;
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// One logged answer.
#[derive(Debug, Clone)]
pub struct ScoreRow {
    /// µs UTC.
    pub ts: i64,
    pub method: &'static str,
    pub service: String,
    pub deployment_id: String,
    pub current_weight: f64,
    pub elapsed_seconds: f64,
    pub metrics: u32,
    pub failure_probability: f64,
    pub confidence: f64,
    pub judge_score: f64,
    pub decision: String,
    pub next_weight: f64,
    /// `name@version` of the models used, comma-separated.
    pub models: String,
    /// The answer's reasons as JSON.
    pub reasons: String,
    pub latency_ms: f64,
}

/// The sending side, cloned into every handler.
#[derive(Debug, Clone)]
pub struct ScoreLog {
    tx: Option<mpsc::Sender<ScoreRow>>,
    metrics: Arc<Metrics>,
}

impl ScoreLog {
    /// A log that keeps nothing (no store).
    pub fn disabled(metrics: Arc<Metrics>) -> ScoreLog {
        ScoreLog { tx: None, metrics }
    }

    /// Starts the writer task; it ends (after writing what it holds) when every sender is gone.
    pub fn start(store: Store, buffer: usize, batch_rows: usize, flush: Duration, metrics: Arc<Metrics>) -> (ScoreLog, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(buffer.max(1));
        let handle = tokio::spawn(writer(store, rx, batch_rows.max(1), flush, metrics.clone()));
        (ScoreLog { tx: Some(tx), metrics }, handle)
    }

    /// Queues a row; drops (and counts) it when the buffer is full.
    pub fn push(&self, row: ScoreRow) {
        if let Some(tx) = &self.tx
            && tx.try_send(row).is_err()
        {
            self.metrics.scorelog_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn writer(store: Store, mut rx: mpsc::Receiver<ScoreRow>, batch_rows: usize, flush: Duration, metrics: Arc<Metrics>) {
    let mut batch: Vec<ScoreRow> = Vec::new();
    let mut seq = 0u64;
    loop {
        let next = tokio::time::timeout(flush, rx.recv()).await;
        let closed = matches!(next, Ok(None));
        let timed_out = next.is_err();
        if let Ok(Some(row)) = next {
            batch.push(row);
            // Take what is already waiting, up to a batch.
            while batch.len() < batch_rows {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
        }
        if !batch.is_empty() && (batch.len() >= batch_rows || closed || timed_out) {
            seq += 1;
            let rows = std::mem::take(&mut batch);
            let n = rows.len() as u64;
            match write(&store, rows, seq).await {
                Ok(()) => {
                    metrics.scorelog_written.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    metrics.scorelog_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, rows = n, "score log: a batch was not written");
                }
            }
        }
        if closed {
            return;
        }
    }
}

async fn write(store: &Store, rows: Vec<ScoreRow>, seq: u64) -> Result<(), String> {
    let first = rows.first().map_or(0, |r| r.ts);
    let date = chrono::DateTime::from_timestamp_micros(first).map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default();
    let col_f = |name: &str, f: fn(&ScoreRow) -> f64| Column::new(name.into(), rows.iter().map(f).collect::<Vec<f64>>());
    let col_s = |name: &str, f: fn(&ScoreRow) -> &str| Column::new(name.into(), rows.iter().map(f).collect::<Vec<&str>>());
    let ts = Column::new("ts".into(), rows.iter().map(|r| r.ts).collect::<Vec<i64>>())
        .cast(&DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)))
        .map_err(|e| e.to_string())?;
    let mut df = DataFrame::new_infer_height(vec![
        ts,
        col_s("method", |r| r.method),
        col_s("service", |r| &r.service),
        col_s("deployment_id", |r| &r.deployment_id),
        col_f("current_weight", |r| r.current_weight),
        col_f("elapsed_seconds", |r| r.elapsed_seconds),
        Column::new("metrics".into(), rows.iter().map(|r| r.metrics).collect::<Vec<u32>>()),
        col_f("failure_probability", |r| r.failure_probability),
        col_f("confidence", |r| r.confidence),
        col_f("judge_score", |r| r.judge_score),
        col_s("decision", |r| &r.decision),
        col_f("next_weight", |r| r.next_weight),
        col_s("models", |r| &r.models),
        col_s("reasons", |r| &r.reasons),
        col_f("latency_ms", |r| r.latency_ms),
    ])
    .map_err(|e| e.to_string())?;
    // Unique per process and batch: a restart never overwrites an earlier file.
    let rel = format!("scores/date={date}/part-{first}-{}-{seq:06}.parquet", std::process::id());
    store.write_parquet(&rel, &mut df).await.map_err(|e| e.to_string())?;
    Ok(())
}
