//! Access logs in nginx/Apache `combined` format with a trailing request time (nginx
//! `$request_time`, seconds with millisecond resolution), a sampled log of the modelled traffic.
//!
//! Requests come from five behavioural profiles — a browsing visitor, a mobile app, a crawler,
//! an integration (API client) and a checkout flow — that differ in routes, methods, statuses,
//! response sizes, latencies, user agents and time of day, so that k-means over omen's request
//! vectors can find them again. Each service mixes them in its own proportions.

use std::io::Write;

use super::rng::{Rng, derive, splitmix64};
use super::traffic::{Traffic, US_PER_HOUR, US_PER_S};

/// One behavioural profile.
pub struct Profile {
    pub name: &'static str,
    routes: &'static [(&'static str, &'static str, f64)],
    statuses: &'static [(u16, f64)],
    /// Median response size (bytes) and log-sd.
    bytes: (f64, f64),
    /// Median latency (ms) and log-sd.
    latency_ms: (f64, f64),
    agents: &'static [&'static str],
    /// Hour of its daily peak, UTC, and how strongly it peaks (0: flat).
    peak_hour: f64,
    peakiness: f64,
    /// Distinct clients.
    clients: u64,
    ipv6: f64,
    referer: bool,
}

pub const PROFILES: [Profile; 5] = [
    Profile {
        name: "browse",
        routes: &[
            ("GET", "/", 0.10),
            ("GET", "/products/{id}", 0.40),
            ("GET", "/category/{slug}", 0.15),
            ("GET", "/search?q={word}&page={n}", 0.12),
            ("GET", "/static/app.{hash}.js", 0.13),
            ("GET", "/static/styles.{hash}.css", 0.10),
        ],
        statuses: &[(200, 0.88), (304, 0.08), (404, 0.035), (500, 0.005)],
        bytes: (18_000.0, 0.9),
        latency_ms: (35.0, 0.5),
        agents: &[
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        ],
        peak_hour: 15.0,
        peakiness: 1.0,
        clients: 20_000,
        ipv6: 0.2,
        referer: true,
    },
    Profile {
        name: "mobile",
        routes: &[
            ("GET", "/api/v2/feed", 0.35),
            ("GET", "/api/v2/items/{id}", 0.30),
            ("POST", "/api/v2/events", 0.25),
            ("GET", "/api/v2/notifications", 0.10),
        ],
        statuses: &[(200, 0.86), (204, 0.12), (401, 0.015), (503, 0.005)],
        bytes: (1_800.0, 0.8),
        latency_ms: (22.0, 0.4),
        agents: &[
            "ShopApp/5.12.1 (iPhone; iOS 17.5; Scale/3.00)",
            "okhttp/4.12.0",
            "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP2A.240705.005)",
        ],
        peak_hour: 19.0,
        peakiness: 1.3,
        clients: 30_000,
        ipv6: 0.35,
        referer: false,
    },
    Profile {
        name: "crawler",
        routes: &[
            ("GET", "/products/{id}", 0.55),
            ("GET", "/category/{slug}?page={n}", 0.25),
            ("GET", "/sitemap.xml", 0.10),
            ("GET", "/robots.txt", 0.10),
        ],
        statuses: &[(200, 0.78), (404, 0.15), (301, 0.07)],
        bytes: (45_000.0, 0.6),
        latency_ms: (120.0, 0.6),
        agents: &[
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        ],
        peak_hour: 3.0,
        peakiness: 0.2,
        clients: 40,
        ipv6: 0.0,
        referer: false,
    },
    Profile {
        name: "integration",
        routes: &[
            ("POST", "/api/v1/orders", 0.35),
            ("GET", "/api/v1/orders/{id}", 0.30),
            ("PUT", "/api/v1/inventory/{sku}", 0.25),
            ("GET", "/api/v1/reports/daily?date={date}", 0.10),
        ],
        statuses: &[(200, 0.6), (201, 0.3), (400, 0.04), (409, 0.03), (429, 0.02), (500, 0.01)],
        bytes: (700.0, 1.0),
        latency_ms: (160.0, 0.7),
        agents: &["python-requests/2.32.3", "Go-http-client/2.0", "curl/8.5.0", "Java/17.0.12"],
        peak_hour: 11.0,
        peakiness: 2.0,
        clients: 60,
        ipv6: 0.1,
        referer: false,
    },
    Profile {
        name: "checkout",
        routes: &[
            ("POST", "/api/cart/items", 0.35),
            ("POST", "/api/checkout", 0.20),
            ("GET", "/api/users/{id}/orders", 0.25),
            ("POST", "/api/payments/{uuid}/confirm", 0.20),
        ],
        statuses: &[(200, 0.75), (201, 0.2), (402, 0.03), (500, 0.02)],
        bytes: (2_500.0, 0.5),
        latency_ms: (450.0, 0.5),
        agents: &[
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        ],
        peak_hour: 20.0,
        peakiness: 1.5,
        clients: 8_000,
        ipv6: 0.2,
        referer: true,
    },
];

const SLUGS: &[&str] = &["shoes", "garden", "books", "kitchen", "toys", "outdoor", "audio", "office"];
const WORDS: &[&str] = &["red+shoes", "lamp", "usb-c", "tent", "coffee", "desk", "headphones", "gift"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// How a service's log is written.
#[derive(Debug, Clone)]
pub struct LogPlan {
    /// Share of each profile in the service's traffic.
    pub mix: [f64; 5],
    /// The log's time-zone offset, minutes east of UTC.
    pub tz_minutes: i64,
    /// Logged lines per second of modelled traffic (the sampling fraction).
    pub sample: f64,
    /// Latency scale of the service relative to the profiles' medians.
    pub latency_scale: f64,
    /// Key of the client pools.
    pub client_key: u64,
}

/// What a log file holds.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogCounts {
    pub lines: u64,
    /// Lines that are not access-log lines (a line cut short by a crash): rejects on ingest.
    pub planted_rejects: u64,
    /// Probes with a garbage request line (`"-"`, TLS bytes): rows, with route `{malformed}`.
    pub probes: u64,
}

/// Writes the log lines of `[from, to)` (µs) into `out`; one truncated line is planted at
/// `plant_at` (a line index) when given.
pub fn write_period(rng: &mut Rng, plan: &LogPlan, traffic: &Traffic, from: i64, to: i64, plant_at: Option<u64>, out: &mut Vec<u8>) -> LogCounts {
    let mut counts = LogCounts::default();
    let mut hour_start = from - from.rem_euclid(US_PER_HOUR);
    let mut times: Vec<i64> = Vec::new();
    while hour_start < to {
        let a = hour_start.max(from);
        let b = (hour_start + US_PER_HOUR).min(to);
        let mid = a + (b - a) / 2;
        let expected = traffic.rate(mid) * plan.sample * ((b - a) / US_PER_S) as f64;
        let n = rng.poisson(expected);
        times.clear();
        times.extend((0..n).map(|_| a + rng.below((b - a) as u64) as i64));
        times.sort_unstable();
        let h = (mid.rem_euclid(86_400 * US_PER_S)) as f64 / US_PER_HOUR as f64;
        let weights: Vec<f64> = PROFILES
            .iter()
            .zip(plan.mix)
            .map(|(p, m)| {
                let phase = std::f64::consts::TAU * (h - p.peak_hour) / 24.0;
                m * (p.peakiness * phase.cos()).exp()
            })
            .collect();
        for &t in &times {
            let line_start = out.len();
            if rng.bernoulli(1.0 / 20_000.0) {
                write_probe(rng, plan, t, out);
                counts.probes += 1;
            } else {
                let p = &PROFILES[rng.weighted(&weights)];
                write_line(rng, plan, p, t, out);
            }
            if plant_at == Some(counts.lines) {
                // A line cut short, as a crashed writer leaves it, before the complete one.
                let cut = line_start + (out.len() - line_start) * 2 / 5;
                let partial = out[line_start..cut].to_vec();
                out.truncate(line_start);
                out.extend_from_slice(&partial);
                out.push(b'\n');
                counts.planted_rejects += 1;
                write_line(rng, plan, &PROFILES[0], t, out);
            }
            counts.lines += 1;
        }
        hour_start += US_PER_HOUR;
    }
    counts
}

fn client(plan: &LogPlan, profile: usize, idx: u64, ipv6: bool) -> String {
    let h = splitmix64(plan.client_key ^ derive(profile as u64, &[]) ^ idx.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    if ipv6 {
        format!("2001:db8:{:x}:{:x}::{:x}", (h >> 48) & 0xffff, (h >> 32) & 0xffff, h & 0xffff)
    } else {
        format!("{}.{}.{}.{}", 11 + (h >> 56) % 212, (h >> 48) & 0xff, (h >> 40) & 0xff, 1 + (h >> 32) % 254)
    }
}

fn timestamp(plan: &LogPlan, t: i64, out: &mut Vec<u8>) {
    let local = t / US_PER_S + plan.tz_minutes * 60;
    let dt = chrono::DateTime::from_timestamp(local, 0).unwrap_or_default().naive_utc();
    use chrono::{Datelike, Timelike};
    let sign = if plan.tz_minutes < 0 { '-' } else { '+' };
    let tz = plan.tz_minutes.abs();
    write!(
        out,
        "[{:02}/{}/{}:{:02}:{:02}:{:02} {sign}{:02}{:02}]",
        dt.day(),
        MONTHS[dt.month0() as usize],
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        tz / 60,
        tz % 60
    )
    .expect("vec");
}

fn write_line(rng: &mut Rng, plan: &LogPlan, p: &Profile, t: i64, out: &mut Vec<u8>) {
    let pi = PROFILES.iter().position(|q| q.name == p.name).unwrap_or(0);
    let ipv6 = rng.bernoulli(p.ipv6);
    // Heavy users: a client's index is drawn from a skewed distribution.
    let idx = ((rng.f64().powi(3)) * p.clients as f64) as u64;
    out.extend_from_slice(client(plan, pi, idx, ipv6).as_bytes());
    out.extend_from_slice(b" - - ");
    timestamp(plan, t, out);
    let (method, template) = {
        let w: Vec<f64> = p.routes.iter().map(|r| r.2).collect();
        let r = &p.routes[rng.weighted(&w)];
        (r.0, r.1)
    };
    let version = if rng.bernoulli(0.3) { "2.0" } else { "1.1" };
    write!(out, " \"{method} ").expect("vec");
    fill(rng, template, t, out);
    let status = p.statuses[rng.weighted(&p.statuses.iter().map(|s| s.1).collect::<Vec<_>>())].0;
    let bytes = match status {
        304 | 204 => "-".to_string(),
        s if s >= 400 => format!("{}", rng.range(150, 600)),
        _ => format!("{}", rng.lognormal(p.bytes.0.ln(), p.bytes.1).round() as u64),
    };
    let referer = if p.referer && rng.bernoulli(0.7) { "https://shop.example.com/" } else { "-" };
    let agent = rng.pick(p.agents);
    let mut latency = rng.lognormal((p.latency_ms.0 * plan.latency_scale).ln(), p.latency_ms.1) / 1000.0;
    if status >= 500 {
        latency *= 3.0;
    }
    writeln!(out, " HTTP/{version}\" {status} {bytes} \"{referer}\" \"{agent}\" {:.3}", latency.max(0.001)).expect("vec");
}

fn fill(rng: &mut Rng, template: &str, t: i64, out: &mut Vec<u8>) {
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.extend_from_slice(&rest.as_bytes()[..i]);
        let j = rest[i..].find('}').map_or(rest.len(), |j| i + j);
        match &rest[i + 1..j] {
            "id" => write!(out, "{}", 1 + (rng.f64().powi(2) * 99_999.0) as u64),
            "slug" => write!(out, "{}", rng.pick(SLUGS)),
            "word" => write!(out, "{}", rng.pick(WORDS)),
            "n" => write!(out, "{}", rng.range(1, 20)),
            "hash" => write!(out, "{:08x}", (t / (7 * 86_400 * US_PER_S)) as u32 ^ 0x5bd1_e995),
            "sku" => write!(out, "SKU-{:05}", rng.range(1, 99_999)),
            "uuid" => {
                let a = rng.next_u64();
                let b = rng.next_u64();
                write!(out, "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xfff, b >> 52, b & 0xffff_ffff_ffff)
            }
            "date" => {
                let d = chrono::DateTime::from_timestamp(t / US_PER_S - 86_400, 0).unwrap_or_default();
                write!(out, "{}", d.format("%Y-%m-%d"))
            }
            other => write!(out, "{other}"),
        }
        .expect("vec");
        rest = &rest[(j + 1).min(rest.len())..];
    }
    out.extend_from_slice(rest.as_bytes());
}

fn write_probe(rng: &mut Rng, plan: &LogPlan, t: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(client(plan, 9, rng.below(500), false).as_bytes());
    out.extend_from_slice(b" - - ");
    timestamp(plan, t, out);
    let request = if rng.bernoulli(0.5) { "-" } else { "\\x16\\x03\\x01\\x00\\xA5\\x01\\x00\\x00\\xA1\\x03\\x03" };
    writeln!(out, " \"{request}\" 400 {} \"-\" \"-\" 0.000", rng.range(0, 200)).expect("vec");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_as_combined_with_a_request_time() {
        let traffic = Traffic::draw(&mut Rng::new(1), 1, 0);
        let plan = LogPlan { mix: [0.3, 0.3, 0.1, 0.1, 0.2], tz_minutes: -300, sample: 0.01, latency_scale: 1.0, client_key: 3 };
        let mut out = Vec::new();
        let c = write_period(&mut Rng::new(2), &plan, &traffic, 0, 86_400 * US_PER_S, Some(10), &mut out);
        assert!(c.lines > 100, "{}", c.lines);
        assert_eq!(c.planted_rejects, 1);
        let masker = omen_features::mask::Masker::new([7u8; 32]);
        let mut parser = omen_features::ingest::logs::LogParser::new(&omen_features::ingest::logs::LogFormat::Combined, masker).unwrap();
        let (df, rejects) = parser.parse("t.log", &out, 1).unwrap();
        assert_eq!(rejects.len(), 1, "{rejects:?}");
        assert_eq!(df.height() as u64, c.lines);
        let lat = df.column("latency_ms").unwrap().f64().unwrap();
        assert_eq!(lat.null_count(), 0, "every line has a request time");
    }
}
