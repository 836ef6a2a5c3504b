//! The open-model engine: a scheduler thread issues arrivals at their intended times, each
//! arrival runs as its own task on the runtime, and every latency is measured from the intended
//! time, so a stalled target shows as latency rather than as fewer requests (no coordinated
//! omission).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::histogram::{AtomicHistogram, Histogram};
use super::transactions::Rule;
use crate::error::{Error, Result};

/// Why a request or a transaction failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// No connection: refused, unreachable, DNS, TLS handshake, connect timeout.
    Connect = 0,
    /// No response before the deadline (`--timeout` from the intended time, and the run's end).
    Timeout = 1,
    /// A response with another status than expected.
    Status = 2,
    /// A response whose body failed a `validate` rule.
    Validation = 3,
    /// The connection failed after it was made (reset, closed early, malformed response).
    Io = 4,
}

pub const ERROR_KINDS: [ErrorKind; 5] =
    [ErrorKind::Connect, ErrorKind::Timeout, ErrorKind::Status, ErrorKind::Validation, ErrorKind::Io];

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Status => "status",
            ErrorKind::Validation => "validation",
            ErrorKind::Io => "io",
        }
    }
}

/// What a response must be for a call to succeed.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// Exactly this status.
    Code(u16),
    /// Any status below 400.
    Below400,
}

/// A request ready to send (its `Uri` is absolute).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub method: Method,
    pub uri: Uri,
    pub headers: Arc<[(HeaderName, HeaderValue)]>,
    pub body: Bytes,
    pub content_type: Option<&'static str>,
    /// `host:port`, the port explicit.
    pub authority: Arc<str>,
    /// The whole HTTP/1.1 request, for the plain-HTTP client.
    pub wire: Bytes,
}

impl Prepared {
    /// A request; `uri` must be absolute.
    pub fn new(
        method: Method,
        uri: Uri,
        headers: Arc<[(HeaderName, HeaderValue)]>,
        body: Bytes,
        content_type: Option<&'static str>,
    ) -> Prepared {
        let host = uri.host().unwrap_or("");
        let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        let authority: Arc<str> = Arc::from(format!("{host}:{port}"));
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut w = Vec::with_capacity(128 + body.len());
        w.extend_from_slice(method.as_str().as_bytes());
        w.push(b' ');
        w.extend_from_slice(target.as_bytes());
        w.extend_from_slice(b" HTTP/1.1\r\n");
        let has = |name: &HeaderName| headers.iter().any(|(k, _)| k == name);
        if !has(&hyper::header::HOST) {
            w.extend_from_slice(b"host: ");
            w.extend_from_slice(uri.authority().map_or(host, |a| a.as_str()).as_bytes());
            w.extend_from_slice(b"\r\n");
        }
        if !has(&USER_AGENT) {
            w.extend_from_slice(b"user-agent: omen-load\r\n");
        }
        if let Some(ct) = content_type.filter(|_| !has(&CONTENT_TYPE)) {
            w.extend_from_slice(b"content-type: ");
            w.extend_from_slice(ct.as_bytes());
            w.extend_from_slice(b"\r\n");
        }
        for (k, v) in headers.iter() {
            if k == hyper::header::CONTENT_LENGTH || k == hyper::header::TRANSFER_ENCODING {
                continue;
            }
            w.extend_from_slice(k.as_str().as_bytes());
            w.extend_from_slice(b": ");
            w.extend_from_slice(v.as_bytes());
            w.extend_from_slice(b"\r\n");
        }
        if !body.is_empty() || matches!(method, Method::POST | Method::PUT | Method::PATCH) {
            w.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
        }
        w.extend_from_slice(b"\r\n");
        w.extend_from_slice(&body);
        Prepared { method, uri, headers, body, content_type, authority, wire: Bytes::from(w) }
    }
}

/// One step of a flow's sequence.
#[derive(Debug, Clone)]
pub struct Call {
    pub name: String,
    pub request: Prepared,
    pub expect: Expect,
    pub validate: Vec<Rule>,
}

/// A request template of a single-request flow: `{…}` holes take seeded random integers.
#[derive(Debug, Clone)]
pub struct Template {
    pub method: Method,
    /// Literal pieces around the holes (`pieces.len() == holes + 1`), the first starting with
    /// the base URL.
    pub pieces: Vec<String>,
    pub body: Bytes,
}

/// What one arrival of a flow does.
#[derive(Debug, Clone)]
pub enum FlowKind {
    /// One request chosen by weight from the templates (cumulative weights beside).
    Requests { templates: Vec<Template>, cumulative: Vec<f64> },
    /// The calls in order, stopping at the first failure.
    Steps(Vec<Call>),
}

/// A stream of arrivals at its share of the rate.
#[derive(Debug, Clone)]
pub struct Flow {
    pub name: String,
    pub share: f64,
    pub kind: FlowKind,
}

/// The run's settings, checked.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Lanes: threads each with its own runtime and connections.
    pub threads: usize,
    /// Connections per authority at most, over all lanes (plain HTTP).
    pub connections: u64,
    pub rate: f64,
    pub duration: Duration,
    pub timeout: Duration,
    pub max_in_flight: u64,
    pub seed: u64,
}

/// Counts of one call (a stream's request, or a transaction's step), shared by the tasks.
#[derive(Debug)]
pub struct CallStats {
    pub sent: AtomicU64,
    pub ok: AtomicU64,
    /// Responses by status class: index 1 to 5 for 1xx to 5xx, 0 for anything else.
    pub classes: [AtomicU64; 6],
    /// Responses by status code (index = code, 0 for codes of 600 and above).
    pub codes: Box<[AtomicU64]>,
    pub errors: [AtomicU64; 5],
    pub first_error: [OnceLock<String>; 5],
    pub latency: AtomicHistogram,
}

impl Default for CallStats {
    fn default() -> Self {
        CallStats {
            sent: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            classes: Default::default(),
            codes: (0..600).map(|_| AtomicU64::new(0)).collect(),
            errors: Default::default(),
            first_error: Default::default(),
            latency: AtomicHistogram::default(),
        }
    }
}

impl CallStats {
    fn error(&self, kind: ErrorKind, message: impl FnOnce() -> String) {
        self.errors[kind as usize].fetch_add(1, Ordering::Relaxed);
        let slot = &self.first_error[kind as usize];
        if slot.get().is_none() {
            let _ = slot.set(message());
        }
    }

    fn status(&self, code: u16) {
        let class = match code / 100 {
            c @ 1..=5 => c as usize,
            _ => 0,
        };
        self.classes[class].fetch_add(1, Ordering::Relaxed);
        let i = if code < 600 { code as usize } else { 0 };
        self.codes[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts of one flow (a stream or a transaction).
#[derive(Debug, Default)]
pub struct FlowStats {
    /// Arrivals due during the run.
    pub offered: AtomicU64,
    /// Arrivals never sent: over `--max-in-flight`, or already past their deadline when the
    /// scheduler reached them.
    pub dropped: AtomicU64,
    pub in_flight: AtomicU64,
    pub ok: AtomicU64,
    pub failed: [AtomicU64; 5],
    /// Arrivals that ended with a response (success or not), from the intended time.
    pub latency: AtomicHistogram,
    pub calls: Vec<CallStats>,
}

/// A call's counts, read once at the end of the run.
#[derive(Debug, Clone, Default)]
pub struct CallSnapshot {
    pub sent: u64,
    pub ok: u64,
    pub classes: [u64; 6],
    /// (status code, responses), ascending.
    pub codes: Vec<(u16, u64)>,
    pub errors: [u64; 5],
    pub first_error: [Option<String>; 5],
    pub latency: Histogram,
}

/// A flow's counts, read once at the end of the run.
#[derive(Debug, Clone, Default)]
pub struct FlowSnapshot {
    pub offered: u64,
    pub dropped: u64,
    pub ok: u64,
    /// Failed arrivals by kind; arrivals still running at the run's deadline are timeouts.
    pub failed: [u64; 5],
    /// Of the timeouts, arrivals still running at the run's deadline.
    pub cancelled: u64,
    pub latency: Histogram,
    pub calls: Vec<CallSnapshot>,
}

impl FlowStats {
    fn snapshot(&self, cancelled: u64) -> FlowSnapshot {
        let ld = |a: &AtomicU64| a.load(Ordering::Acquire);
        let mut failed: [u64; 5] = std::array::from_fn(|i| ld(&self.failed[i]));
        failed[ErrorKind::Timeout as usize] += cancelled;
        FlowSnapshot {
            offered: ld(&self.offered),
            dropped: ld(&self.dropped),
            ok: ld(&self.ok),
            failed,
            cancelled,
            latency: self.latency.snapshot(),
            calls: self
                .calls
                .iter()
                .map(|c| CallSnapshot {
                    sent: ld(&c.sent),
                    ok: ld(&c.ok),
                    classes: std::array::from_fn(|i| ld(&c.classes[i])),
                    codes: c
                        .codes
                        .iter()
                        .enumerate()
                        .filter_map(|(code, n)| {
                            let n = ld(n);
                            (n > 0).then_some((code as u16, n))
                        })
                        .collect(),
                    errors: std::array::from_fn(|i| ld(&c.errors[i])),
                    first_error: std::array::from_fn(|i| c.first_error[i].get().cloned()),
                    latency: c.latency.snapshot(),
                })
                .collect(),
        }
    }
}

/// Everything the tasks share.
struct Ctx {
    flows: Vec<Flow>,
    stats: Vec<FlowStats>,
    /// One client per lane.
    clients: Vec<HttpClient>,
    settings: Settings,
    in_flight: AtomicU64,
    closed: AtomicBool,
    hard_deadline: Instant,
}

/// What the engine measured.
#[derive(Debug)]
pub struct Measured {
    pub flows: Vec<Flow>,
    pub stats: Vec<FlowSnapshot>,
    /// Dispatch time minus intended time, per sent arrival (µs).
    pub lag: Histogram,
    pub started: chrono::DateTime<chrono::Utc>,
    pub elapsed: Duration,
}

/// The HTTP/1.1 client: omen's own for plain HTTP (`http`), hyper's pooled client with rustls
/// when any URL is HTTPS. Both keep connections alive with `TCP_NODELAY`.
enum HttpClient {
    Plain(super::http::Pools),
    Tls(Box<Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>>),
}

impl HttpClient {
    fn new(timeout: Duration, tls: bool, max_open: usize) -> Result<HttpClient> {
        if !tls {
            return Ok(HttpClient::Plain(super::http::Pools::new(max_open)));
        }
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let mut b = Client::builder(TokioExecutor::new());
        b.pool_timer(TokioTimer::new()).pool_idle_timeout(Duration::from_secs(90)).pool_max_idle_per_host(max_open);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| Error::input("https", format!("no system root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(HttpClient::Tls(Box::new(b.build(https))))
    }

    /// Sends `p` and reads the whole response; `Err` with the failure's kind and message.
    async fn send(&self, p: &Prepared, want_body: bool) -> std::result::Result<(u16, Bytes), (ErrorKind, String)> {
        let c = match self {
            HttpClient::Plain(pools) => return pools.send(&p.authority, &p.wire, p.method == Method::HEAD, want_body).await,
            HttpClient::Tls(c) => c,
        };
        let mut b = Request::builder().method(p.method.clone()).uri(p.uri.clone()).header(USER_AGENT, "omen-load");
        if let Some(ct) = p.content_type {
            b = b.header(CONTENT_TYPE, ct);
        }
        for (k, v) in p.headers.iter() {
            b = b.header(k, v);
        }
        let req = b.body(Full::new(p.body.clone())).map_err(|e| (ErrorKind::Io, format!("{}: {e}", p.uri)))?;
        let resp = c.request(req).await.map_err(|e| classify(&p.uri, &e))?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        if want_body {
            let bytes = body.collect().await.map_err(|e| (ErrorKind::Io, format!("{}: reading the body: {}", p.uri, chain(&e))))?;
            Ok((status, bytes.to_bytes()))
        } else {
            while let Some(frame) = body.frame().await {
                frame.map_err(|e| (ErrorKind::Io, format!("{}: reading the body: {}", p.uri, chain(&e))))?;
            }
            Ok((status, Bytes::new()))
        }
    }
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

fn classify(uri: &Uri, e: &hyper_util::client::legacy::Error) -> (ErrorKind, String) {
    let authority = uri.authority().map_or_else(|| uri.to_string(), |a| a.to_string());
    // The root cause says it best ("Connection refused (os error 111)").
    let mut root: &(dyn std::error::Error + 'static) = e;
    while let Some(s) = root.source() {
        root = s;
    }
    if e.is_connect() {
        (ErrorKind::Connect, format!("cannot connect to {authority}: {root}"))
    } else {
        (ErrorKind::Io, format!("{authority}: {}", chain(e)))
    }
}

/// SplitMix64: the seeded choices of requests and placeholder values.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs the flows for `settings.duration` and returns what was measured.
///
/// The arrivals run on `settings.threads` lanes, each an OS thread with a single-threaded
/// tokio runtime and its own connections (as wrk's threads): no work stealing, so no wake-up of
/// an idle worker for every task, which on loopback cost more than the requests.
pub async fn run(flows: Vec<Flow>, settings: Settings) -> Result<Measured> {
    let tls = flows.iter().any(|f| match &f.kind {
        FlowKind::Requests { templates, .. } => templates.iter().any(|t| t.pieces[0].starts_with("https:")),
        FlowKind::Steps(calls) => calls.iter().any(|c| c.request.uri.scheme_str() == Some("https")),
    });
    let lanes = settings.threads.max(1);
    let per_lane = settings.connections.div_ceil(lanes as u64).max(1) as usize;
    let clients = (0..lanes).map(|_| HttpClient::new(settings.timeout, tls, per_lane)).collect::<Result<Vec<_>>>()?;
    let stats = flows
        .iter()
        .map(|f| FlowStats {
            calls: match &f.kind {
                FlowKind::Requests { .. } => vec![CallStats::default()],
                FlowKind::Steps(c) => c.iter().map(|_| CallStats::default()).collect(),
            },
            ..FlowStats::default()
        })
        .collect();
    let started = chrono::Utc::now();
    // A moment for the threads to start before the first arrival is due.
    let t0 = Instant::now() + Duration::from_millis(20);
    let ctx = Arc::new(Ctx {
        flows,
        stats,
        clients,
        settings,
        in_flight: AtomicU64::new(0),
        closed: AtomicBool::new(false),
        hard_deadline: t0 + settings.duration + settings.timeout,
    });
    // The scheduler thread hands arrivals over in batches (one wake-up per batch, not per
    // arrival), round robin over the lanes.
    // A thread that cannot start ends the run; the lanes already started stop with it.
    let fail = |what: &str, e: std::io::Error| {
        ctx.closed.store(true, Ordering::Release);
        Error::Join(format!("starting {what}: {e}"))
    };
    let mut senders = Vec::with_capacity(lanes);
    let mut threads = Vec::with_capacity(lanes);
    for lane in 0..lanes {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Vec<Arrival>>();
        senders.push(tx);
        let lane_ctx = ctx.clone();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| fail("a load thread", e))?;
        let t = std::thread::Builder::new()
            .name(format!("omen-load-{lane}"))
            .spawn(move || rt.block_on(run_lane(lane_ctx, lane, rx)))
            .map_err(|e| fail("a load thread", e))?;
        threads.push(t);
    }
    let sched_ctx = ctx.clone();
    let scheduler = std::thread::Builder::new()
        .name("omen-load-scheduler".into())
        .spawn(move || schedule(sched_ctx, senders, t0))
        .map_err(|e| fail("the scheduler", e))?;
    // Wait for the scheduler without holding a runtime worker.
    let lag = tokio::task::spawn_blocking(move || scheduler.join())
        .await
        .map_err(|e| Error::Join(e.to_string()))?
        .map_err(|_| Error::Join("the load scheduler panicked".into()))?;
    // In-flight arrivals end by their own deadlines (never after the run's); wait for them, with
    // a little grace for a busy machine, then close the books and stop the lanes.
    let grace = ctx.hard_deadline + Duration::from_millis(200);
    while ctx.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < grace {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    ctx.closed.store(true, Ordering::Release);
    let cancelled: Vec<u64> = ctx.stats.iter().map(|s| s.in_flight.load(Ordering::Acquire)).collect();
    let elapsed = t0.elapsed();
    let flows = ctx.flows.clone();
    let stats = ctx.stats.iter().zip(&cancelled).map(|(s, &c)| s.snapshot(c)).collect();
    for t in threads {
        tokio::task::spawn_blocking(move || t.join())
            .await
            .map_err(|e| Error::Join(e.to_string()))?
            .map_err(|_| Error::Join("a load thread panicked".into()))?;
    }
    Ok(Measured { flows, stats, lag, started, elapsed })
}

/// One lane: spawns the arrivals it is handed, then keeps them running until the run closes
/// (dropping the runtime then cancels any straggler).
async fn run_lane(ctx: Arc<Ctx>, lane: usize, mut rx: tokio::sync::mpsc::UnboundedReceiver<Vec<Arrival>>) {
    while let Some(batch) = rx.recv().await {
        for a in batch {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let _guard = InFlight(&ctx, a.flow);
                let client = &ctx.clients[lane];
                match a.request {
                    Some(p) => single(&ctx, client, a.flow, p, a.intended).await,
                    None => steps(&ctx, client, a.flow, a.intended).await,
                }
            });
        }
    }
    while !ctx.closed.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    if let HttpClient::Plain(pools) = &ctx.clients[lane] {
        pools.close();
    }
}

/// The scheduler's shortest sleep. Above 5,000 arrivals a second it wakes at most every 200 µs
/// and dispatches what came due meanwhile: a wake-up (and a cross-thread hand-over) per arrival
/// cost more CPU than the requests themselves, and the lag this adds (reported as
/// `schedule_lag_ms`, and inside every latency) stays under a quarter of a millisecond.
const MIN_SLEEP: Duration = Duration::from_micros(200);

/// An arrival handed to the runtime.
struct Arrival {
    flow: usize,
    /// The request of a single-request flow; `None` for a sequence of steps.
    request: Option<Prepared>,
    intended: Instant,
}

/// The scheduler: arrivals of each flow at `t0 + j / (rate · share)`, merged in time order,
/// dispatched no earlier than intended, in batches of those due. Returns the dispatch lag.
fn schedule(ctx: Arc<Ctx>, lanes: Vec<tokio::sync::mpsc::UnboundedSender<Vec<Arrival>>>, t0: Instant) -> Histogram {
    let s = ctx.settings;
    let horizon = s.duration.as_secs_f64();
    let rates: Vec<f64> = ctx.flows.iter().map(|f| s.rate * f.share).collect();
    let mut next: Vec<u64> = vec![0; rates.len()];
    let mut rng = SplitMix64::new(s.seed);
    let mut lag = Histogram::default();
    let mut batches: Vec<Vec<Arrival>> = lanes.iter().map(|_| Vec::new()).collect();
    let mut pending = 0usize;
    let mut turn = 0usize;
    let flush = |batches: &mut Vec<Vec<Arrival>>| {
        for (b, tx) in batches.iter_mut().zip(&lanes) {
            if !b.is_empty() {
                let _ = tx.send(std::mem::take(b));
            }
        }
    };
    let mut now = Instant::now();
    loop {
        // The flow whose next arrival comes first.
        let mut best: Option<(usize, f64)> = None;
        for (i, &r) in rates.iter().enumerate() {
            if r <= 0.0 {
                continue;
            }
            let at = next[i] as f64 / r;
            if at < horizon && best.is_none_or(|(_, b)| at < b) {
                best = Some((i, at));
            }
        }
        let Some((i, at)) = best else { break };
        next[i] += 1;
        let intended = t0 + Duration::from_secs_f64(at);
        let stats = &ctx.stats[i];
        stats.offered.fetch_add(1, Ordering::Relaxed);
        if intended > now {
            // Hand over what is due, then wait for this one.
            if pending > 0 {
                flush(&mut batches);
                pending = 0;
            }
            now = Instant::now();
            if intended > now {
                std::thread::sleep((intended - now).max(MIN_SLEEP));
            }
            now = Instant::now();
        }
        // Chosen before the drop check, so that a seed gives the same requests whatever drops.
        let request = match &ctx.flows[i].kind {
            FlowKind::Requests { templates, cumulative } => {
                let total = cumulative.last().copied().unwrap_or(0.0);
                let x = rng.next_f64() * total;
                let k = cumulative.partition_point(|&c| c <= x).min(templates.len() - 1);
                Some(fill(&templates[k], &mut rng))
            }
            FlowKind::Steps(_) => None,
        };
        if now >= intended + s.timeout || ctx.in_flight.load(Ordering::Acquire) >= s.max_in_flight {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        lag.record((now - intended).as_micros() as u64);
        ctx.in_flight.fetch_add(1, Ordering::AcqRel);
        stats.in_flight.fetch_add(1, Ordering::AcqRel);
        batches[turn].push(Arrival { flow: i, request, intended });
        turn = (turn + 1) % batches.len();
        pending += 1;
        if pending >= 1024 {
            flush(&mut batches);
            pending = 0;
            now = Instant::now();
        }
    }
    flush(&mut batches);
    lag
}

/// Decrements the in-flight counts when an arrival's task ends (or is dropped).
struct InFlight<'a>(&'a Ctx, usize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.stats[self.1].in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

fn fill(t: &Template, rng: &mut SplitMix64) -> Prepared {
    let mut url = String::with_capacity(t.pieces.iter().map(String::len).sum::<usize>() + 8 * t.pieces.len());
    for (k, piece) in t.pieces.iter().enumerate() {
        if k > 0 {
            url.push_str(&(1 + rng.next_u64() % 999_999).to_string());
        }
        url.push_str(piece);
    }
    let uri = url.parse::<Uri>().unwrap_or_else(|_| Uri::from_static("http://invalid.invalid/"));
    Prepared::new(t.method.clone(), uri, Arc::from(Vec::new()), t.body.clone(), (!t.body.is_empty()).then_some("application/json"))
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

async fn call(
    ctx: &Ctx,
    client: &HttpClient,
    p: &Prepared,
    want_body: bool,
    deadline: Instant,
) -> std::result::Result<(u16, Bytes), (ErrorKind, String)> {
    match tokio::time::timeout_at(deadline.into(), client.send(p, want_body)).await {
        Ok(r) => r,
        Err(_) => Err((
            ErrorKind::Timeout,
            format!("{}: no response within {:?} of the intended send time (--timeout), or by the run's deadline", p.uri, ctx.settings.timeout),
        )),
    }
}

async fn single(ctx: &Ctx, client: &HttpClient, i: usize, p: Prepared, intended: Instant) {
    let stats = &ctx.stats[i];
    let c = &stats.calls[0];
    c.sent.fetch_add(1, Ordering::Relaxed);
    let deadline = (intended + ctx.settings.timeout).min(ctx.hard_deadline);
    let r = call(ctx, client, &p, false, deadline).await;
    if ctx.closed.load(Ordering::Acquire) {
        return;
    }
    match r {
        Ok((status, _)) => {
            let us = micros(intended.elapsed());
            c.status(status);
            c.latency.record(us);
            stats.latency.record(us);
            if status < 400 {
                c.ok.fetch_add(1, Ordering::Relaxed);
                stats.ok.fetch_add(1, Ordering::Relaxed);
            } else {
                c.error(ErrorKind::Status, || format!("{} {}: status {status}", p.method, p.uri));
                stats.failed[ErrorKind::Status as usize].fetch_add(1, Ordering::Relaxed);
            }
        }
        Err((kind, message)) => {
            c.error(kind, || message);
            stats.failed[kind as usize].fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn steps(ctx: &Ctx, client: &HttpClient, i: usize, intended: Instant) {
    let FlowKind::Steps(calls) = &ctx.flows[i].kind else { return };
    let stats = &ctx.stats[i];
    let mut start = intended;
    for (k, step) in calls.iter().enumerate() {
        let c = &stats.calls[k];
        c.sent.fetch_add(1, Ordering::Relaxed);
        let deadline = (start + ctx.settings.timeout).min(ctx.hard_deadline);
        let r = call(ctx, client, &step.request, !step.validate.is_empty(), deadline).await;
        if ctx.closed.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        let fail = |kind: ErrorKind| {
            stats.failed[kind as usize].fetch_add(1, Ordering::Relaxed);
            if matches!(kind, ErrorKind::Status | ErrorKind::Validation) {
                stats.latency.record(micros(now - intended));
            }
        };
        let (status, body) = match r {
            Ok(x) => x,
            Err((kind, message)) => {
                c.error(kind, || message);
                return fail(kind);
            }
        };
        c.status(status);
        c.latency.record(micros(now - start));
        let ok = match step.expect {
            Expect::Code(code) => status == code,
            Expect::Below400 => status < 400,
        };
        if !ok {
            c.error(ErrorKind::Status, || {
                let want = match step.expect {
                    Expect::Code(code) => code.to_string(),
                    Expect::Below400 => "below 400".into(),
                };
                format!("{} {}: status {status}, expected {want}", step.request.method, step.request.uri)
            });
            return fail(ErrorKind::Status);
        }
        let mut json = None;
        if let Some(why) = step.validate.iter().find_map(|r| r.check(&body, &mut json)) {
            c.error(ErrorKind::Validation, || format!("{} {}: {why}", step.request.method, step.request.uri));
            return fail(ErrorKind::Validation);
        }
        c.ok.fetch_add(1, Ordering::Relaxed);
        start = now;
    }
    stats.ok.fetch_add(1, Ordering::Relaxed);
    stats.latency.record(micros(start - intended));
}
