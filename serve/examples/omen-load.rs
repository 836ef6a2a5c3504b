//! `omen-load`: a load client for `omen-serve` and its benchmark anchors (bench/serve.sh).
//!
//! Targets:
//! - `grpc://HOST:PORT`: `omen.v1.CanaryScorer/Score` with the request of `--request` (a
//!   `ScoreRequest` as proto3 JSON, `.json`, or as protobuf bytes, any other name);
//! - `echo://HOST:PORT`: the same call to a bare tonic service of the same proto
//!   (`examples/omen-echo.rs`), the ceiling;
//! - `http://HOST:PORT/PATH`: `POST` of the file as it is (`content-type: application/json`),
//!   e.g. MLflow's `/invocations`; HTTP/1.1 with keep-alive.
//!
//! Load models:
//! - closed loop (`--concurrency N`): N callers, each sending its next call when the last one is
//!   answered: the maximum throughput at that concurrency;
//! - open loop (`--rate R`): calls sent at a constant rate whatever the answers, from a
//!   dispatcher thread that sleeps to each intended send time; a call's latency is measured from
//!   its *intended* send time, so a stall of the server (or of the client) shows in the
//!   percentiles instead of silently lowering the rate (coordinated omission).
//!
//! The request is encoded once; calls send the same bytes (a pass-through codec: the client does
//! no protobuf work per call, and the answer is checked by its status, not decoded). Calls are
//! spread over `--connections` connections (HTTP/2 multiplexing on one connection serialises on
//! that connection's task): by default one per 16 callers in a closed loop, 4 in an open loop.
//! The first `--warmup` is not counted.
//!
//! Output: one JSON line on stdout: calls sent, OK, shed (`RESOURCE_EXHAUSTED`, or HTTP 429),
//! other errors by code, OK throughput, latency percentiles of the OK calls, the share of OK calls
//! answered within `--deadline`; with `--pid`, the server's RSS every second (start, peak, end)
//! and its CPU time per OK call.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::{Buf, BufMut, Bytes};
use clap::Parser;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SCORE: &str = "/omen.v1.CanaryScorer/Score";

/// Load omen-serve (gRPC), the echo ceiling or an HTTP scoring server.
#[derive(Debug, Parser)]
#[command(name = "omen-load")]
struct Args {
    /// grpc://HOST:PORT (Score), echo://HOST:PORT (the echo service), http://HOST:PORT/PATH (POST)
    #[arg(long)]
    target: String,
    /// The request: a ScoreRequest as proto3 JSON (.json) or protobuf bytes; for http://, the body
    #[arg(long)]
    request: PathBuf,
    /// Closed loop: callers, each waiting for its answer before the next call
    #[arg(long, conflicts_with = "rate", required_unless_present = "rate")]
    concurrency: Option<usize>,
    /// Open loop: calls per second, sent on schedule whatever the answers
    #[arg(long)]
    rate: Option<f64>,
    /// Measured time ("30s", "500ms", "1m")
    #[arg(long, default_value = "10s")]
    duration: String,
    /// Time before the measurement (same load, not counted)
    #[arg(long, default_value = "2s")]
    warmup: String,
    /// Connections [default: one per 16 callers (closed loop), 4 (open loop)]
    #[arg(long)]
    connections: Option<usize>,
    /// The deadline OK calls are checked against (latency from the intended send time)
    #[arg(long, default_value = "5s")]
    deadline: String,
    /// Send this deadline with each gRPC call (grpc-timeout); without it the server's applies
    #[arg(long)]
    send_timeout: Option<String>,
    /// Worker threads of the client's runtime
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Open loop: most calls in flight; beyond, calls are not sent and counted as `not_sent`
    #[arg(long, default_value_t = 20_000)]
    max_in_flight: usize,
    /// The server's process: its RSS sampled every second and its CPU time over the measurement
    #[arg(long)]
    pid: Option<u32>,
    /// A name for the output line
    #[arg(long)]
    label: Option<String>,
}

fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num.trim().parse().with_context(|| format!("duration `{s}`"))?;
    let secs = match unit {
        "ms" => v / 1e3,
        "s" => v,
        "m" => v * 60.0,
        _ => bail!("duration `{s}`: unit ms, s or m"),
    };
    if !(secs.is_finite() && secs >= 0.0) {
        bail!("duration `{s}`: not a duration");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Bytes in, bytes out: the request is encoded once, the answer not decoded.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

#[derive(Debug, Clone)]
enum Outcome {
    Ok,
    Shed,
    Error(String),
}

fn code_name(c: tonic::Code) -> String {
    match c {
        tonic::Code::Cancelled => "CANCELLED".into(),
        tonic::Code::Unknown => "UNKNOWN".into(),
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT".into(),
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED".into(),
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED".into(),
        tonic::Code::Unavailable => "UNAVAILABLE".into(),
        tonic::Code::Unauthenticated => "UNAUTHENTICATED".into(),
        tonic::Code::Internal => "INTERNAL".into(),
        tonic::Code::Unimplemented => "UNIMPLEMENTED".into(),
        c => format!("{c:?}").to_uppercase(),
    }
}

/// The connections and how to send one call.
#[derive(Debug, Clone)]
enum Client {
    Grpc { channels: Vec<Channel>, timeout: Option<Duration> },
    Http { clients: Vec<reqwest::Client>, url: String },
}

impl Client {
    async fn connect(target: &str, connections: usize, timeout: Option<Duration>) -> Result<Client> {
        let connections = connections.max(1);
        if let Some(addr) = target.strip_prefix("grpc://").or_else(|| target.strip_prefix("echo://")) {
            let ep = Endpoint::from_shared(format!("http://{addr}"))?.tcp_nodelay(true);
            let mut channels = Vec::with_capacity(connections);
            for _ in 0..connections {
                channels.push(ep.connect().await.with_context(|| format!("connecting to {target}"))?);
            }
            Ok(Client::Grpc { channels, timeout })
        } else if target.starts_with("http://") {
            let mut clients = Vec::with_capacity(connections);
            for _ in 0..connections {
                clients.push(reqwest::Client::builder().http1_only().tcp_nodelay(true).pool_max_idle_per_host(1024).build()?);
            }
            Ok(Client::Http { clients, url: target.to_string() })
        } else {
            bail!("--target {target}: grpc://HOST:PORT, echo://HOST:PORT or http://HOST:PORT/PATH")
        }
    }

    async fn call(&self, conn: usize, body: &Bytes) -> Outcome {
        match self {
            Client::Grpc { channels, timeout } => {
                let mut g = tonic::client::Grpc::new(channels[conn % channels.len()].clone());
                if let Err(e) = g.ready().await {
                    return Outcome::Error(format!("TRANSPORT: {e}"));
                }
                let mut req = tonic::Request::new(body.clone());
                if let Some(t) = timeout {
                    req.set_timeout(*t);
                }
                match g.unary::<Bytes, Bytes, _>(req, PathAndQuery::from_static(SCORE), RawCodec).await {
                    Ok(_) => Outcome::Ok,
                    Err(s) if s.code() == tonic::Code::ResourceExhausted => Outcome::Shed,
                    Err(s) => Outcome::Error(code_name(s.code())),
                }
            }
            Client::Http { clients, url } => {
                let c = &clients[conn % clients.len()];
                match c.post(url).header("content-type", "application/json").body(body.clone()).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        // Read the whole answer, as a caller would.
                        let read = r.bytes().await;
                        match (status, read) {
                            (200, Ok(_)) => Outcome::Ok,
                            (429, _) => Outcome::Shed,
                            (_, Err(_)) => Outcome::Error("TRANSPORT".into()),
                            (s, _) => Outcome::Error(format!("HTTP_{s}")),
                        }
                    }
                    Err(_) => Outcome::Error("TRANSPORT".into()),
                }
            }
        }
    }
}

/// What the measured calls gave.
#[derive(Debug, Default)]
struct Stats {
    sent: u64,
    ok: u64,
    shed: u64,
    errors: BTreeMap<String, u64>,
    /// Latencies of the OK calls, ns.
    ok_ns: Vec<u64>,
    /// Open loop: latencies of the OK calls from the actual send time, ns.
    service_ns: Vec<u64>,
    /// Latencies of the shed calls, ns.
    shed_ns: Vec<u64>,
}

impl Stats {
    fn record(&mut self, o: Outcome, latency: Duration, service: Option<Duration>) {
        self.sent += 1;
        match o {
            Outcome::Ok => {
                self.ok += 1;
                self.ok_ns.push(latency.as_nanos() as u64);
                if let Some(s) = service {
                    self.service_ns.push(s.as_nanos() as u64);
                }
            }
            Outcome::Shed => {
                self.shed += 1;
                self.shed_ns.push(latency.as_nanos() as u64);
            }
            Outcome::Error(e) => *self.errors.entry(e).or_default() += 1,
        }
    }

    fn merge(&mut self, o: Stats) {
        self.sent += o.sent;
        self.ok += o.ok;
        self.shed += o.shed;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.ok_ns.extend(o.ok_ns);
        self.service_ns.extend(o.service_ns);
        self.shed_ns.extend(o.shed_ns);
    }
}

/// Percentiles (ms) of latencies in ns: nearest rank on the sorted values.
fn percentiles(v: &mut [u64]) -> serde_json::Value {
    if v.is_empty() {
        return serde_json::Value::Null;
    }
    v.sort_unstable();
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1] as f64 / 1e6;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64 / 1e6;
    serde_json::json!({
        "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p999": at(0.999), "max": v[v.len() - 1] as f64 / 1e6, "mean": mean,
    })
}

/// VmRSS of a process, kB.
fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok())
}

/// User + system CPU seconds of a process (clock ticks of 1/100 s, Linux's USER_HZ).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (u, k): (u64, u64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
    Some((u + k) as f64 / 100.0)
}

fn load_request(args: &Args) -> Result<Bytes> {
    let raw = std::fs::read(&args.request).with_context(|| format!("reading --request {}", args.request.display()))?;
    if args.target.starts_with("http://") {
        return Ok(Bytes::from(raw));
    }
    let req = if args.request.extension().is_some_and(|e| e == "json") {
        omen_serve::http::request_from_json(&raw).map_err(|e| anyhow::anyhow!("--request {}: {e}", args.request.display()))?
    } else {
        omen_serve::proto::ScoreRequest::decode(raw.as_slice()).with_context(|| format!("--request {}: not a ScoreRequest", args.request.display()))?
    };
    Ok(Bytes::from(req.encode_to_vec()))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let duration = parse_duration(&args.duration)?;
    let warmup = parse_duration(&args.warmup)?;
    let deadline = parse_duration(&args.deadline)?;
    let send_timeout = args.send_timeout.as_deref().map(parse_duration).transpose()?;
    if let Some(r) = args.rate
        && !(r.is_finite() && r > 0.0)
    {
        bail!("--rate {r}: must be positive");
    }
    if args.concurrency == Some(0) {
        bail!("--concurrency must be at least 1");
    }
    let body = load_request(&args)?;
    let connections = args.connections.unwrap_or(match args.concurrency {
        Some(n) => n.div_ceil(16),
        None => 4,
    });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads.max(1)).enable_all().build()?;
    let client = rt.block_on(Client::connect(&args.target, connections, send_timeout))?;
    // One call first: a target that does not answer OK is an error, not a benchmark.
    match rt.block_on(client.call(0, &body)) {
        Outcome::Ok => {}
        o => bail!("{}: the first call was not answered OK: {o:?}", args.target),
    }

    // The server's RSS every second, from before the load to its end.
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = args.pid.map(|pid| {
        let stop = stop_sampling.clone();
        std::thread::spawn(move || {
            let mut samples = vec![];
            loop {
                if let Some(kb) = rss_kb(pid) {
                    samples.push(kb);
                }
                for _ in 0..10 {
                    if stop.load(Ordering::Relaxed) {
                        if let Some(kb) = rss_kb(pid) {
                            samples.push(kb);
                        }
                        return samples;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
    });

    let start = Instant::now();
    let warm_end = start + warmup;
    let end = warm_end + duration;
    let cpu_at = |pid: Option<u32>| pid.and_then(|p| cpu_seconds(&p.to_string()));
    let mut cpu_marks: Vec<(Option<f64>, Option<f64>)> = vec![];
    let mut not_sent = 0u64;
    let mut unfinished = 0u64;

    let stats = if let Some(n) = args.concurrency {
        let workers: Vec<_> = (0..n)
            .map(|w| {
                let (client, body) = (client.clone(), body.clone());
                rt.spawn(async move {
                    let mut st = Stats::default();
                    loop {
                        let t = Instant::now();
                        if t >= end {
                            break;
                        }
                        let o = client.call(w, &body).await;
                        if t >= warm_end {
                            st.record(o, t.elapsed(), None);
                        }
                    }
                    st
                })
            })
            .collect();
        std::thread::sleep(warm_end.saturating_duration_since(Instant::now()));
        cpu_marks.push((cpu_at(args.pid), cpu_seconds("self")));
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        cpu_marks.push((cpu_at(args.pid), cpu_seconds("self")));
        let mut all = Stats::default();
        for w in workers {
            all.merge(rt.block_on(w)?);
        }
        all
    } else {
        let rate = args.rate.unwrap_or(1.0);
        let period = Duration::from_secs_f64(1.0 / rate);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let seq = Arc::new(AtomicU64::new(0));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Outcome, Duration, Duration)>();
        let collected = Arc::new(std::sync::Mutex::new(Stats::default()));
        let sink = collected.clone();
        rt.spawn(async move {
            while let Some((o, lat, service)) = rx.recv().await {
                sink.lock().unwrap_or_else(|e| e.into_inner()).record(o, lat, Some(service));
            }
        });
        let handle = rt.handle().clone();
        let mut marked = false;
        let mut i: u64 = 0;
        loop {
            let intended = start + period.mul_f64(i as f64);
            if intended >= end {
                break;
            }
            let now = Instant::now();
            if intended > now {
                // std's sleep (nanosleep) has µs resolution; tokio's timer has 1 ms.
                std::thread::sleep(intended - now);
            }
            if !marked && intended >= warm_end {
                cpu_marks.push((cpu_at(args.pid), cpu_seconds("self")));
                marked = true;
            }
            let measured = intended >= warm_end;
            i += 1;
            if in_flight.load(Ordering::Relaxed) >= args.max_in_flight {
                if measured {
                    not_sent += 1;
                }
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (client, body, tx, in_flight) = (client.clone(), body.clone(), tx.clone(), in_flight.clone());
            let conn = seq.fetch_add(1, Ordering::Relaxed) as usize;
            handle.spawn(async move {
                let sent = Instant::now();
                let o = client.call(conn, &body).await;
                let done = Instant::now();
                in_flight.fetch_sub(1, Ordering::Relaxed);
                if measured {
                    let _ = tx.send((o, done - intended, done - sent));
                }
            });
        }
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        cpu_marks.push((cpu_at(args.pid), cpu_seconds("self")));
        drop(tx);
        // Calls still in flight: wait for them up to the deadline and a little more.
        let grace = Instant::now() + deadline + Duration::from_secs(5);
        while in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(10));
        }
        unfinished = in_flight.load(Ordering::Relaxed) as u64;
        // What the collector has received (calls still in flight past the grace are `unfinished`).
        std::thread::sleep(Duration::from_millis(100));
        std::mem::take(&mut *collected.lock().unwrap_or_else(|e| e.into_inner()))
    };
    stop_sampling.store(true, Ordering::Relaxed);
    let rss = sampler.map(|h| h.join().unwrap_or_default());

    let mut stats = stats;
    let within = stats.ok_ns.iter().filter(|&&ns| ns <= deadline.as_nanos() as u64).count();
    let secs = duration.as_secs_f64();
    let (server_cpu, client_cpu) = match cpu_marks.as_slice() {
        [(s0, c0), (s1, c1), ..] => (s0.zip(*s1).map(|(a, b)| b - a), c0.zip(*c1).map(|(a, b)| b - a)),
        _ => (None, None),
    };
    let mut out = serde_json::json!({
        "label": args.label,
        "target": args.target,
        "mode": if args.concurrency.is_some() { "closed" } else { "open" },
        "concurrency": args.concurrency,
        "rate": args.rate,
        "connections": connections,
        "duration_s": secs,
        "request_bytes": body.len(),
        "sent": stats.sent,
        "ok": stats.ok,
        "shed": stats.shed,
        "errors": stats.errors,
        "not_sent": not_sent,
        "unfinished": unfinished,
        "throughput": stats.ok as f64 / secs,
        "offered": stats.sent as f64 / secs,
        "latency_ms": percentiles(&mut stats.ok_ns),
        "shed_latency_ms": percentiles(&mut stats.shed_ns),
        "deadline_s": deadline.as_secs_f64(),
        "ok_within_deadline": if stats.ok > 0 { within as f64 / stats.ok as f64 } else { 0.0 },
        "client_cpu_s": client_cpu,
    });
    if args.rate.is_some() {
        out["service_latency_ms"] = percentiles(&mut stats.service_ns);
    }
    if let Some(samples) = rss {
        out["server_pid"] = args.pid.into();
        out["server_cpu_s"] = server_cpu.into();
        out["server_cpu_us_per_ok"] = server_cpu.filter(|_| stats.ok > 0).map(|c| c * 1e6 / stats.ok as f64).into();
        out["rss_kb"] = serde_json::json!({
            "start": samples.first(),
            "peak": samples.iter().max(),
            "end": samples.last(),
            "samples": samples,
        });
    }
    println!("{out}");
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
