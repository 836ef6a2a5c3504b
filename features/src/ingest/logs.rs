//! HTTP access logs: Apache/nginx `combined` and `common` (with or without a trailing request
//! time), nginx JSON lines, and any nginx `log_format` string.
//!
//! Each line becomes a `requests/` row or a [`Reject`] with its line number and reason. What is
//! accepted, and how:
//!
//! | input | handling |
//! |---|---|
//! | trailing integer after `combined`/`common` | Apache `%D`, microseconds |
//! | trailing decimal after `combined`/`common` | nginx `$request_time`, seconds |
//! | `-` bytes, referer or user agent | null |
//! | request line `-`, a binary probe, or anything not `METHOD target [HTTP/x]` | kept as a row: method `-`, path `-`, route `{malformed}` (the status, usually 400, is real traffic) |
//! | IPv6 client, `HTTP/2.0`, escaped quotes in quoted fields, time-zone offsets | parsed |
//! | invalid UTF-8, a missing or unparsable field, a non-numeric status | rejected with the reason |
//!
//! The query string is removed from `path` (its parameter names are kept, sorted, in
//! `query_keys`); the client address becomes a keyed hash; `route` templates ids, UUIDs, hashes,
//! e-mails and tokens.

use std::collections::HashMap;

use memchr::memmem;
use polars::prelude::*;

use crate::error::{Error, Result};
use crate::ingest::{Reject, conform, lines};
use crate::mask::Masker;
use crate::schema::REQUESTS;

/// The access-log format of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFormat {
    /// Decided per file from its first lines.
    Auto,
    /// `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`, optional request time after.
    Combined,
    /// `%h %l %u %t "%r" %>s %b`, optional request time after.
    Common,
    /// nginx `log_format … escape=json` lines: one JSON object per line.
    NginxJson,
    /// An nginx `log_format` string such as `$remote_addr [$time_local] "$request" $status`.
    Custom(String),
}

impl LogFormat {
    /// Parses a `--format` value: `auto`, `combined`, `common`, `nginx-json`, or a `log_format`
    /// string (anything containing a `$variable`).
    pub fn parse(s: &str) -> Result<LogFormat> {
        match s.trim() {
            "auto" => Ok(LogFormat::Auto),
            "combined" => Ok(LogFormat::Combined),
            "common" => Ok(LogFormat::Common),
            "nginx-json" | "json" => Ok(LogFormat::NginxJson),
            t if t.contains('$') => {
                Template::compile(t)?;
                Ok(LogFormat::Custom(t.to_string()))
            }
            other => Err(Error::field(
                "format",
                format!(
                    "unknown log format `{other}`: expected auto, combined, common, nginx-json or an nginx log_format string with $variables"
                ),
            )),
        }
    }

    /// The name used in summaries.
    pub fn name(&self) -> &str {
        match self {
            LogFormat::Auto => "auto",
            LogFormat::Combined => "combined",
            LogFormat::Common => "common",
            LogFormat::NginxJson => "nginx-json",
            LogFormat::Custom(_) => "custom",
        }
    }

    /// Guesses the format from a file's first lines: the format that parses most of the first 50
    /// non-empty lines, or `None` when none parses any.
    pub fn detect(bytes: &[u8]) -> Option<LogFormat> {
        let sample: Vec<&[u8]> = lines(bytes).map(|(_, l)| l).filter(|l| !l.is_empty()).take(50).collect();
        if sample.is_empty() {
            return None;
        }
        let candidates = [LogFormat::NginxJson, LogFormat::Combined, LogFormat::Common];
        let mut best: Option<(usize, LogFormat)> = None;
        for f in candidates {
            let Ok(p) = Parser::new(&f) else { continue };
            let ok = sample.iter().filter(|l| p.parse_fields(l).is_ok()).count();
            if ok > 0 && best.as_ref().is_none_or(|(n, _)| ok > *n) {
                best = Some((ok, f));
            }
        }
        best.map(|(_, f)| f)
    }
}

// ---------------------------------------------------------------------------------------------
// Templates

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    RemoteAddr,
    TimeLocal,
    TimeIso8601,
    Msec,
    Request,
    Method,
    RequestUri,
    Uri,
    Args,
    Protocol,
    Status,
    BodyBytes,
    BytesSent,
    RequestTime,
    UpstreamTime,
    Referer,
    UserAgent,
    Ignore,
}

impl Field {
    fn from_var(v: &str) -> Field {
        match v {
            "remote_addr" | "realip_remote_addr" | "binary_remote_addr" => Field::RemoteAddr,
            "time_local" => Field::TimeLocal,
            "time_iso8601" => Field::TimeIso8601,
            "msec" => Field::Msec,
            "request" => Field::Request,
            "request_method" => Field::Method,
            "request_uri" => Field::RequestUri,
            "uri" | "document_uri" => Field::Uri,
            "args" | "query_string" => Field::Args,
            "server_protocol" => Field::Protocol,
            "status" => Field::Status,
            "body_bytes_sent" => Field::BodyBytes,
            "bytes_sent" => Field::BytesSent,
            "request_time" => Field::RequestTime,
            "upstream_response_time" => Field::UpstreamTime,
            "http_referer" => Field::Referer,
            "http_user_agent" => Field::UserAgent,
            _ => Field::Ignore,
        }
    }
}

#[derive(Debug)]
enum Tok {
    Lit(Vec<u8>, memmem::Finder<'static>),
    Var(Field),
}

#[derive(Debug)]
struct Template {
    toks: Vec<Tok>,
    /// `combined`/`common`: a number after the last field is the request time.
    trailing_time: bool,
}

const COMBINED: &str = r#"$remote_addr $remote_ident $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
const COMMON: &str = r#"$remote_addr $remote_ident $remote_user [$time_local] "$request" $status $body_bytes_sent"#;

impl Template {
    fn compile(spec: &str) -> Result<Template> {
        let bad = |m: String| Error::field("format", m);
        // nginx writes log_format strings quoted, possibly split into several quoted pieces.
        let spec = unquote_log_format(spec);
        let b = spec.as_bytes();
        let mut toks: Vec<Tok> = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'$' {
                let braced = b.get(i + 1) == Some(&b'{');
                let start = if braced { i + 2 } else { i + 1 };
                let mut j = start;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if j == start {
                    return Err(bad(format!("`$` without a variable name at column {}", i + 1)));
                }
                let name = &spec[start..j];
                if braced {
                    if b.get(j) != Some(&b'}') {
                        return Err(bad(format!("unclosed `${{{name}` at column {}", i + 1)));
                    }
                    j += 1;
                }
                if !lit.is_empty() {
                    let l = std::mem::take(&mut lit);
                    toks.push(Tok::Lit(l.clone(), memmem::Finder::new(&l).into_owned()));
                }
                if matches!(toks.last(), Some(Tok::Var(_))) {
                    return Err(bad(format!("variables `…${name}` must be separated by literal text")));
                }
                toks.push(Tok::Var(Field::from_var(name)));
                i = j;
            } else {
                lit.push(b[i]);
                i += 1;
            }
        }
        if !lit.is_empty() {
            toks.push(Tok::Lit(lit.clone(), memmem::Finder::new(&lit).into_owned()));
        }
        let fields: Vec<Field> = toks.iter().filter_map(|t| if let Tok::Var(f) = t { Some(*f) } else { None }).collect();
        if !fields.iter().any(|f| matches!(f, Field::TimeLocal | Field::TimeIso8601 | Field::Msec)) {
            return Err(bad("log_format has no time variable ($time_local, $time_iso8601 or $msec)".into()));
        }
        if !fields.contains(&Field::Status) {
            return Err(bad("log_format has no $status".into()));
        }
        if !fields.iter().any(|f| matches!(f, Field::Request | Field::RequestUri | Field::Uri)) {
            return Err(bad("log_format has no $request, $request_uri or $uri".into()));
        }
        Ok(Template { toks, trailing_time: false })
    }
}

fn unquote_log_format(spec: &str) -> String {
    let t = spec.trim().trim_end_matches(';');
    let t = t.strip_prefix("log_format").map(|r| r.trim_start()).unwrap_or(t);
    // `log_format name [escape=…] '…' '…';` or just `'…' '…'` or an unquoted string.
    let pieces: Vec<&str> = t.split('\'').collect();
    if pieces.len() >= 3 {
        return pieces.iter().skip(1).step_by(2).copied().collect::<Vec<_>>().concat();
    }
    t.to_string()
}

// ---------------------------------------------------------------------------------------------
// Parsing one line into raw fields

/// The fields of one line, borrowed from it.
#[derive(Debug, Default, Clone, Copy)]
struct Raw<'a> {
    client: Option<&'a str>,
    time_local: Option<&'a str>,
    time_iso: Option<&'a str>,
    msec: Option<&'a str>,
    request: Option<&'a str>,
    method: Option<&'a str>,
    uri: Option<&'a str>,
    args: Option<&'a str>,
    protocol: Option<&'a str>,
    status: Option<&'a str>,
    bytes: Option<&'a str>,
    request_time: Option<&'a str>,
    upstream_time: Option<&'a str>,
    referer: Option<&'a str>,
    user_agent: Option<&'a str>,
    /// Apache `%D` (integer µs) or nginx `$request_time` (decimal s) after the last field.
    trailing_time: Option<&'a str>,
}

enum Parser {
    Template(Template),
    Json,
}

impl Parser {
    fn new(format: &LogFormat) -> Result<Parser> {
        Ok(match format {
            LogFormat::Auto => return Err(Error::field("format", "auto must be resolved before parsing")),
            LogFormat::Combined => Parser::Template(Template { trailing_time: true, ..Template::compile(COMBINED)? }),
            LogFormat::Common => Parser::Template(Template { trailing_time: true, ..Template::compile(COMMON)? }),
            LogFormat::NginxJson => Parser::Json,
            LogFormat::Custom(s) => Parser::Template(Template::compile(s)?),
        })
    }

    fn parse_fields<'a>(&self, line: &'a [u8]) -> std::result::Result<Owned<'a>, String> {
        let line = std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
        match self {
            Parser::Template(t) => parse_template(t, line).map(Owned::Borrowed),
            Parser::Json => parse_json(line).map(Owned::Json),
        }
    }
}

/// Fields borrowed from the line, or held by a parsed JSON object.
enum Owned<'a> {
    Borrowed(Raw<'a>),
    Json(JsonLine),
}

fn is_quoted_close(line: &[u8], at: usize) -> bool {
    // A quote preceded by an odd number of backslashes is escaped.
    let mut n = 0;
    let mut i = at;
    while i > 0 && line[i - 1] == b'\\' {
        n += 1;
        i -= 1;
    }
    n % 2 == 0
}

fn parse_template<'a>(t: &Template, line: &'a str) -> std::result::Result<Raw<'a>, String> {
    let b = line.as_bytes();
    let mut raw = Raw::default();
    let mut pos = 0usize;
    let mut prev_quote = false;
    for (i, tok) in t.toks.iter().enumerate() {
        match tok {
            Tok::Lit(l, _) => {
                if !b[pos..].starts_with(l) {
                    let what = String::from_utf8_lossy(l);
                    return Err(format!("expected `{}` at column {}", what.escape_debug(), pos + 1));
                }
                pos += l.len();
                prev_quote = l.last() == Some(&b'"');
            }
            Tok::Var(f) => {
                let end = match t.toks.get(i + 1) {
                    Some(Tok::Lit(l, finder)) => {
                        let quoted = prev_quote && l.first() == Some(&b'"');
                        let mut from = pos;
                        loop {
                            let found = if l.len() == 1 { memchr::memchr(l[0], &b[from..]) } else { finder.find(&b[from..]) };
                            let Some(k) = found else {
                                return Err(format!(
                                    "field {} (`{:?}`) is not closed by `{}`",
                                    i / 2 + 1,
                                    f,
                                    String::from_utf8_lossy(l).escape_debug()
                                ));
                            };
                            let at = from + k;
                            if quoted && !is_quoted_close(b, at) {
                                from = at + 1;
                                continue;
                            }
                            break at;
                        }
                    }
                    _ => memchr::memchr2(b' ', b'\t', &b[pos..]).map_or(b.len(), |k| pos + k),
                };
                let v = &line[pos..end];
                store_field(&mut raw, *f, v);
                pos = end;
            }
        }
    }
    let rest = line[pos..].trim();
    if !rest.is_empty() {
        if t.trailing_time {
            let first = rest.split_ascii_whitespace().next().unwrap_or("");
            if first.bytes().all(|c| c.is_ascii_digit() || c == b'.') && !first.is_empty() {
                raw.trailing_time = Some(first);
            }
        } else if pos == 0 {
            return Err("line does not match the log format".into());
        }
    }
    Ok(raw)
}

fn store_field<'a>(raw: &mut Raw<'a>, f: Field, v: &'a str) {
    match f {
        Field::RemoteAddr => raw.client = Some(v),
        Field::TimeLocal => raw.time_local = Some(v),
        Field::TimeIso8601 => raw.time_iso = Some(v),
        Field::Msec => raw.msec = Some(v),
        Field::Request => raw.request = Some(v),
        Field::Method => raw.method = Some(v),
        Field::RequestUri | Field::Uri => raw.uri = Some(v),
        Field::Args => raw.args = Some(v),
        Field::Protocol => raw.protocol = Some(v),
        Field::Status => raw.status = Some(v),
        Field::BodyBytes => raw.bytes = Some(v),
        Field::BytesSent => {
            if raw.bytes.is_none() {
                raw.bytes = Some(v)
            }
        }
        Field::RequestTime => raw.request_time = Some(v),
        Field::UpstreamTime => raw.upstream_time = Some(v),
        Field::Referer => raw.referer = Some(v),
        Field::UserAgent => raw.user_agent = Some(v),
        Field::Ignore => {}
    }
}

/// The fields of an nginx JSON line, owned because JSON strings may be escaped.
#[derive(Debug, Default)]
struct JsonLine {
    fields: HashMap<String, String>,
}

fn parse_json(line: &str) -> std::result::Result<JsonLine, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v.as_object().ok_or("JSON line is not an object")?;
    let mut fields = HashMap::with_capacity(obj.len());
    for (k, v) in obj {
        let s = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Null => "-".to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => other.to_string(),
        };
        fields.insert(k.clone(), s);
    }
    let has = |keys: &[&str]| keys.iter().any(|k| fields.contains_key(*k));
    if !has(&["time_local", "time_iso8601", "msec", "@timestamp", "timestamp", "time"]) {
        return Err("JSON line has no time field (time_local, time_iso8601, msec, @timestamp)".into());
    }
    if !has(&["status"]) {
        return Err("JSON line has no status field".into());
    }
    if !has(&["request", "request_uri", "uri"]) {
        return Err("JSON line has no request, request_uri or uri field".into());
    }
    Ok(JsonLine { fields })
}

impl JsonLine {
    fn raw(&self) -> Raw<'_> {
        let g = |k: &str| self.fields.get(k).map(String::as_str);
        let first = |ks: &[&str]| ks.iter().find_map(|k| g(k));
        let time = first(&["time_iso8601", "@timestamp", "timestamp", "time"]);
        Raw {
            client: first(&["remote_addr", "realip_remote_addr", "client", "client_ip"]),
            time_local: g("time_local"),
            time_iso: time,
            msec: g("msec"),
            request: g("request"),
            method: g("request_method").or_else(|| g("method")),
            uri: first(&["request_uri", "uri"]),
            args: first(&["args", "query_string"]),
            protocol: g("server_protocol").or_else(|| g("protocol")),
            status: g("status"),
            bytes: first(&["body_bytes_sent", "bytes_sent"]),
            request_time: g("request_time"),
            upstream_time: g("upstream_response_time"),
            referer: first(&["http_referer", "referer"]),
            user_agent: first(&["http_user_agent", "user_agent"]),
            trailing_time: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Field conversions

/// Parses `10/Oct/2000:13:55:36 -0700` to microseconds since the epoch, UTC.
pub fn parse_clf_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[14] != b':' || b[17] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as i64;
        }
        Some(v)
    };
    let day = num(0..2)?;
    let month = match &b[3..6] {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    };
    let year = num(7..11)?;
    let (h, mi, sec) = (num(12..14)?, num(15..17)?, num(18..20)?);
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut frac_us = 0i64;
    let mut i = 20;
    if b.get(i) == Some(&b'.') {
        // Some servers log fractional seconds: `…:36.123 +0000`.
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        let mut us: i64 = 0;
        for (k, c) in digits.bytes().take(6).enumerate() {
            us += ((c - b'0') as i64) * 10i64.pow(5 - k as u32);
        }
        frac_us = us;
    }
    let rest = s[i..].trim();
    let offset_s = if rest.is_empty() || rest == "Z" {
        0
    } else {
        let rb = rest.as_bytes();
        if rb.len() != 5 || !(rb[0] == b'+' || rb[0] == b'-') || !rb[1..].iter().all(u8::is_ascii_digit) {
            return None;
        }
        let hh = ((rb[1] - b'0') * 10 + (rb[2] - b'0')) as i64;
        let mm = ((rb[3] - b'0') * 10 + (rb[4] - b'0')) as i64;
        let o = hh * 3600 + mm * 60;
        if rb[0] == b'-' { -o } else { o }
    };
    let days = days_from_civil(year, month, day)?;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    Some(secs * 1_000_000 + frac_us)
}

/// Days since 1970-01-01 of a proleptic Gregorian date, `None` when the day does not exist.
fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let dim = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if d > dim[(m - 1) as usize] {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn parse_iso_time(s: &str) -> Option<i64> {
    let dt = chrono::DateTime::parse_from_rfc3339(s.trim()).ok()?;
    Some(dt.timestamp_micros())
}

fn parse_seconds_to_us(s: &str) -> Option<i64> {
    let v: f64 = s.trim().parse().ok()?;
    if !v.is_finite() {
        return None;
    }
    Some((v * 1e6).round() as i64)
}

/// `$request_time`/`$upstream_response_time` in seconds (`0.123`, or `0.1, 0.2 : 0.3` for several
/// upstreams, summed) to milliseconds; `-` is null.
fn parse_seconds_ms(s: &str) -> std::result::Result<Option<f64>, ()> {
    let s = s.trim();
    if s.is_empty() || s == "-" {
        return Ok(None);
    }
    let mut total = 0.0;
    let mut any = false;
    for part in s.split([',', ':']) {
        let p = part.trim();
        if p.is_empty() || p == "-" {
            continue;
        }
        let v: f64 = p.parse().map_err(|_| ())?;
        if !v.is_finite() || v < 0.0 {
            return Err(());
        }
        total += v;
        any = true;
    }
    Ok(any.then_some(total * 1000.0))
}

fn dash(s: Option<&str>) -> Option<&str> {
    s.filter(|v| !v.is_empty() && *v != "-")
}

/// Splits a request target into `(path, sorted query keys)`, dropping the fragment and the
/// scheme and host of an absolute-form target.
pub fn split_target(target: &str) -> (&str, Option<String>) {
    let mut t = target;
    if let Some(rest) = t.strip_prefix("http://").or_else(|| t.strip_prefix("https://")) {
        t = rest.find('/').map_or("/", |i| &rest[i..]);
    }
    if let Some(i) = memchr::memchr(b'#', t.as_bytes()) {
        t = &t[..i];
    }
    match memchr::memchr(b'?', t.as_bytes()).map(|i| (&t[..i], &t[i + 1..])) {
        None => (t, None),
        Some((p, q)) => {
            let mut keys: Vec<&str> =
                q.split('&').filter(|kv| !kv.is_empty()).map(|kv| kv.split('=').next().unwrap_or("")).collect();
            keys.sort_unstable();
            keys.dedup();
            (p, Some(keys.join("&")))
        }
    }
}

/// A URL without its query string and fragment.
fn strip_query(url: &str) -> &str {
    url.find(['?', '#']).map_or(url, |i| &url[..i])
}

/// Templates a path: segments that are numeric ids, UUIDs, hex hashes, e-mails or long opaque
/// tokens become `{id}`, `{uuid}`, `{hash}`, `{email}` and `{token}`.
pub fn template_route(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(classify_segment(seg).unwrap_or(seg));
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn classify_segment(seg: &str) -> Option<&'static str> {
    let b = seg.as_bytes();
    if b.is_empty() {
        return None;
    }
    if b.iter().all(u8::is_ascii_digit) {
        return Some("{id}");
    }
    if is_uuid(b) {
        return Some("{uuid}");
    }
    if seg.contains('@') || seg.contains("%40") {
        let (local, domain) = seg.split_once('@').or_else(|| seg.split_once("%40"))?;
        if !local.is_empty() && domain.contains('.') {
            return Some("{email}");
        }
    }
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    if b.len() >= 8 && digits > 0 && b.iter().all(u8::is_ascii_hexdigit) {
        return Some("{hash}");
    }
    if b.len() >= 20
        && digits > 0
        && b.iter().any(u8::is_ascii_alphabetic)
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'=' | b'.'))
    {
        return Some("{token}");
    }
    // Numeric ids with a short prefix or suffix (`ord_48213`, `12345.json`).
    if b.len() >= 5 && digits * 2 > b.len() && !seg.contains('.') {
        return Some("{id}");
    }
    None
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Classifies a user agent as `bot`, `tool`, `mobile`, `browser` or `other`.
pub fn classify_user_agent(ua: &str) -> &'static str {
    let l = ua.to_ascii_lowercase();
    const BOT: &[&str] = &[
        "bot", "crawl", "spider", "slurp", "facebookexternalhit", "mediapartners", "archiver", "pingdom",
        "uptimerobot", "statuscake", "site24x7", "monitor", "scanner", "nuclei", "zgrab", "masscan", "nmap",
    ];
    const TOOL: &[&str] = &[
        "curl/", "wget/", "python-requests", "python-urllib", "python-httpx", "aiohttp", "go-http-client",
        "java/", "apache-httpclient", "libwww-perl", "httpie", "postmanruntime", "axios", "node-fetch",
        "undici", "k6/", "locust", "wrk", "apachebench", "hey/", "kube-probe", "prometheus", "grpc-",
        "envoy", "elb-healthchecker", "googlehc", "insomnia", "restsharp", "okhttp/", "ruby", "php/",
        "guzzlehttp", "reqwest", "hyper/",
    ];
    const MOBILE: &[&str] = &["mobile", "android", "iphone", "ipad", "ipod", "cfnetwork", "dalvik", "windows phone"];
    if l.is_empty() || l == "-" {
        return "other";
    }
    if BOT.iter().any(|k| l.contains(k)) {
        return "bot";
    }
    if TOOL.iter().any(|k| l.contains(k)) {
        return "tool";
    }
    if MOBILE.iter().any(|k| l.contains(k)) {
        return "mobile";
    }
    if l.starts_with("mozilla/") || l.starts_with("opera/") {
        return "browser";
    }
    "other"
}

fn is_method(m: &str) -> bool {
    !m.is_empty() && m.len() <= 20 && m.bytes().all(|c| c.is_ascii_uppercase() || c == b'-' || c == b'_')
}

// ---------------------------------------------------------------------------------------------
// The parser with its per-source caches

/// A log parser for one format, with caches for the repeated work of a log (routes, masked
/// clients, user-agent classes). Create one per source or per thread.
pub struct LogParser {
    parser: Parser,
    masker: Masker,
    routes: PlHashMap<String, (Box<str>, Box<str>, Option<Box<str>>)>,
    clients: PlHashMap<String, Box<str>>,
    agents: PlHashMap<String, &'static str>,
}

impl std::fmt::Debug for LogParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogParser").finish_non_exhaustive()
    }
}

const CACHE_CAP: usize = 1 << 18;

/// Columns being built.
struct Cols {
    ts: Vec<i64>,
    method: StringChunkedBuilder,
    path: StringChunkedBuilder,
    route: StringChunkedBuilder,
    query_keys: StringChunkedBuilder,
    protocol: StringChunkedBuilder,
    status: Vec<i32>,
    bytes: Vec<Option<i64>>,
    latency: Vec<Option<f64>>,
    client: StringChunkedBuilder,
    referer: StringChunkedBuilder,
    user_agent: StringChunkedBuilder,
    ua_class: StringChunkedBuilder,
    line: Vec<i64>,
}

impl Cols {
    fn new(cap: usize) -> Cols {
        let b = |n: &str| StringChunkedBuilder::new(n.into(), cap);
        Cols {
            ts: Vec::with_capacity(cap),
            method: b("method"),
            path: b("path"),
            route: b("route"),
            query_keys: b("query_keys"),
            protocol: b("protocol"),
            status: Vec::with_capacity(cap),
            bytes: Vec::with_capacity(cap),
            latency: Vec::with_capacity(cap),
            client: b("client"),
            referer: b("referer"),
            user_agent: b("user_agent"),
            ua_class: b("ua_class"),
            line: Vec::with_capacity(cap),
        }
    }
}

/// One parsed row before it is appended.
struct Row<'a> {
    ts: i64,
    status: i32,
    bytes: Option<i64>,
    latency: Option<f64>,
    method: &'a str,
    target: Option<&'a str>,
    protocol: Option<&'a str>,
}

impl LogParser {
    /// A parser for `format` (not `Auto`: resolve it with [`LogFormat::detect`] first).
    pub fn new(format: &LogFormat, masker: Masker) -> Result<LogParser> {
        Ok(LogParser {
            parser: Parser::new(format)?,
            masker,
            routes: PlHashMap::default(),
            clients: PlHashMap::default(),
            agents: PlHashMap::default(),
        })
    }

    /// Parses the lines of `bytes` (numbered from `first_line`) of `source`. Returns the
    /// `requests/` rows (plus the `date` partition column) and the rejects.
    pub fn parse(&mut self, source: &str, bytes: &[u8], first_line: u64) -> Result<(DataFrame, Vec<Reject>)> {
        let est = bytes.len() / 180 + 16;
        let mut cols = Cols::new(est);
        let mut rejects = Vec::new();
        for (n, line) in lines(bytes) {
            let n = n + first_line - 1;
            if line.is_empty() {
                rejects.push(Reject::new(source, n, "empty line", line));
                continue;
            }
            if let Err(reason) = self.parse_line(line, n, &mut cols) {
                rejects.push(Reject::new(source, n, reason, line));
            }
        }
        let df = self.finish(cols, source)?;
        Ok((df, rejects))
    }

    fn parse_line(&mut self, line: &[u8], n: u64, cols: &mut Cols) -> std::result::Result<(), String> {
        let fields = self.parser.parse_fields(line)?;
        let raw = match &fields {
            Owned::Borrowed(r) => *r,
            Owned::Json(j) => j.raw(),
        };
        let row = convert(&raw)?;
        // Everything is valid from here on: append.
        cols.ts.push(row.ts);
        cols.status.push(row.status);
        cols.bytes.push(row.bytes);
        cols.latency.push(row.latency);
        cols.line.push(n as i64);
        cols.method.append_value(row.method);
        cols.protocol.append_option(row.protocol);
        match row.target {
            Some(target) => {
                if self.routes.len() >= CACHE_CAP {
                    self.routes.clear();
                }
                let (path, route, keys) = self.routes.entry_ref(target).or_insert_with(|| {
                    let (p, k) = split_target(target);
                    (p.into(), template_route(p).into(), k.map(Into::into))
                });
                cols.path.append_value(&**path);
                cols.route.append_value(&**route);
                cols.query_keys.append_option(keys.as_deref());
            }
            None => {
                cols.path.append_value("-");
                cols.route.append_value("{malformed}");
                cols.query_keys.append_null();
            }
        }
        let client = raw.client.unwrap_or("-");
        if self.clients.len() >= CACHE_CAP {
            self.clients.clear();
        }
        let masker = &self.masker;
        let c = self.clients.entry_ref(client).or_insert_with(|| masker.mask(client).into());
        cols.client.append_value(&**c);
        cols.referer.append_option(dash(raw.referer).map(strip_query));
        let ua = dash(raw.user_agent);
        cols.user_agent.append_option(ua);
        let class = match ua {
            None => "other",
            Some(ua) => {
                if self.agents.len() >= CACHE_CAP {
                    self.agents.clear();
                }
                *self.agents.entry_ref(ua).or_insert_with(|| classify_user_agent(ua))
            }
        };
        cols.ua_class.append_value(class);
        Ok(())
    }

    fn finish(&self, c: Cols, source: &str) -> Result<DataFrame> {
        let h = c.ts.len();
        let dates = day_strings(&c.ts);
        let ts = Int64Chunked::from_vec("ts".into(), c.ts)
            .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
            .into_column();
        let df = DataFrame::new(
            h,
            vec![
                ts,
                c.method.finish().into_column(),
                c.path.finish().into_column(),
                c.route.finish().into_column(),
                c.query_keys.finish().into_column(),
                c.protocol.finish().into_column(),
                Column::new("status".into(), c.status),
                Column::new("bytes".into(), c.bytes),
                Column::new("latency_ms".into(), c.latency),
                c.client.finish().into_column(),
                c.referer.finish().into_column(),
                c.user_agent.finish().into_column(),
                c.ua_class.finish().into_column(),
                Column::new_scalar("source_file".into(), Scalar::from(PlSmallStr::from(source)), h),
                Column::new("source_line".into(), c.line),
                dates,
            ],
        )?;
        Ok(conform(df, &REQUESTS)?)
    }
}

/// The UTC day (`YYYY-MM-DD`) of each timestamp, as the `date` partition column.
fn day_strings(ts: &[i64]) -> Column {
    // Logs are in time order: remember the last day rather than hashing every row.
    let mut last: Option<(i64, String)> = None;
    let mut b = StringChunkedBuilder::new("date".into(), ts.len());
    for &t in ts {
        let day = t.div_euclid(86_400_000_000);
        if last.as_ref().is_none_or(|(d, _)| *d != day) {
            let s = chrono::DateTime::from_timestamp(day * 86_400, 0)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| "invalid".into());
            last = Some((day, s));
        }
        b.append_value(last.as_ref().map_or("invalid", |(_, s)| s.as_str()));
    }
    b.finish().into_column()
}

fn convert<'a>(raw: &Raw<'a>) -> std::result::Result<Row<'a>, String> {
    let ts = if let Some(t) = raw.time_local {
        parse_clf_time(t.trim_start_matches('[').trim_end_matches(']'))
            .ok_or_else(|| format!("unparsable time `{}`", t.escape_debug()))?
    } else if let Some(t) = raw.time_iso {
        parse_iso_time(t).ok_or_else(|| format!("unparsable time `{}`", t.escape_debug()))?
    } else if let Some(t) = raw.msec {
        parse_seconds_to_us(t).ok_or_else(|| format!("unparsable msec `{}`", t.escape_debug()))?
    } else {
        return Err("no time field".into());
    };
    let status_s = raw.status.ok_or("no status field")?.trim();
    let status: i32 = match status_s.parse() {
        Ok(s) if (0..=999).contains(&s) => s,
        _ => return Err(format!("status `{}` is not an HTTP status code", status_s.escape_debug())),
    };
    let bytes = match dash(raw.bytes.map(str::trim)) {
        None => None,
        Some(b) => Some(b.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| format!("bytes `{}` is not a count", b.escape_debug()))?),
    };
    let latency = if let Some(t) = raw.request_time {
        parse_seconds_ms(t).map_err(|_| format!("request time `{}` is not a number of seconds", t.escape_debug()))?
    } else if let Some(t) = raw.trailing_time {
        if t.contains('.') {
            Some(t.parse::<f64>().map_err(|_| format!("request time `{t}` is not a number"))? * 1000.0)
        } else {
            Some(t.parse::<u64>().map_err(|_| format!("request time `{t}` is not a number"))? as f64 / 1000.0)
        }
    } else if let Some(t) = raw.upstream_time {
        parse_seconds_ms(t).map_err(|_| format!("upstream time `{}` is not a number of seconds", t.escape_debug()))?
    } else {
        None
    };
    let (method, target, protocol) = if let Some(req) = raw.request {
        split_request(req)
    } else {
        let m = raw.method.unwrap_or("-");
        let target = raw.uri.map(|u| (u, raw.args));
        match target {
            Some((u, _)) if is_method(m) || m == "-" => (m, Some(u), dash(raw.protocol)),
            _ => ("-", None, None),
        }
    };
    Ok(Row { ts, status, bytes, latency, method, target, protocol })
}

/// `GET /a?b HTTP/1.1` → (`GET`, `/a?b`, `HTTP/1.1`); anything else is malformed: (`-`, None, None).
fn split_request(req: &str) -> (&str, Option<&str>, Option<&str>) {
    const BAD: (&str, Option<&str>, Option<&str>) = ("-", None, None);
    let b = req.as_bytes();
    let Some(i) = memchr::memchr(b' ', b) else { return BAD };
    let (m, rest) = (&req[..i], &req[i + 1..]);
    let (t, proto) = match memchr::memchr(b' ', rest.as_bytes()) {
        None => (rest, None),
        Some(j) => (&rest[..j], Some(&rest[j + 1..])),
    };
    if !is_method(m) || t.is_empty() {
        return BAD;
    }
    match proto {
        Some(p) if !p.starts_with("HTTP/") || p.as_bytes().contains(&b' ') => BAD,
        _ => (m, Some(t), proto),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(format: &LogFormat, text: &str) -> (DataFrame, Vec<Reject>) {
        let mut p = LogParser::new(format, Masker::new([3; 32])).unwrap();
        p.parse("t.log", text.as_bytes(), 1).unwrap()
    }

    #[test]
    fn clf_time_handles_offsets() {
        let a = parse_clf_time("10/Oct/2000:13:55:36 -0700").unwrap();
        let b = parse_clf_time("10/Oct/2000:20:55:36 +0000").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, 971_211_336_000_000);
        assert!(parse_clf_time("31/Feb/2000:13:55:36 -0700").is_none());
        assert!(parse_clf_time("10/Foo/2000:13:55:36 -0700").is_none());
    }

    #[test]
    fn combined_with_trailing_times() {
        let text = "::1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /users/123/orders?id=9&token=abc HTTP/2.0\" 200 2326 \"http://ex.com/?q=1\" \"Mozilla/5.0 (X11) \\\"quoted\\\" Firefox/1\" 1234\n\
                    10.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"-\" 400 0 \"-\" \"-\" 0.250\n";
        let (df, rej) = parse(&LogFormat::Combined, text);
        assert!(rej.is_empty(), "{rej:?}");
        assert_eq!(df.height(), 2);
        let route = df.column("route").unwrap().str().unwrap();
        assert_eq!(route.get(0), Some("/users/{id}/orders"));
        assert_eq!(route.get(1), Some("{malformed}"));
        let qk = df.column("query_keys").unwrap().str().unwrap();
        assert_eq!(qk.get(0), Some("id&token"));
        let lat = df.column("latency_ms").unwrap().f64().unwrap();
        assert!((lat.get(0).unwrap() - 1.234).abs() < 1e-9);
        assert!((lat.get(1).unwrap() - 250.0).abs() < 1e-9);
        let ua = df.column("user_agent").unwrap().str().unwrap();
        assert!(ua.get(0).unwrap().contains("\\\"quoted\\\""));
        assert_eq!(df.column("protocol").unwrap().str().unwrap().get(0), Some("HTTP/2.0"));
        assert_eq!(df.column("referer").unwrap().str().unwrap().get(0), Some("http://ex.com/"));
    }

    #[test]
    fn routes_are_templated() {
        assert_eq!(template_route("/u/550e8400-e29b-41d4-a716-446655440000/x"), "/u/{uuid}/x");
        assert_eq!(template_route("/c/3f2a9c8e1b"), "/c/{hash}");
        assert_eq!(template_route("/p/bob@example.com"), "/p/{email}");
        assert_eq!(template_route("/a/ord_481234"), "/a/{id}");
        assert_eq!(template_route("/t/eyJhbGciOiJIUzI1NiJ9abcdef"), "/t/{token}");
        assert_eq!(template_route("/static/app.css"), "/static/app.css");
        assert_eq!(template_route("/api/v2/users"), "/api/v2/users");
        assert_eq!(template_route(""), "/");
    }

    #[test]
    fn user_agents_are_classified() {
        assert_eq!(classify_user_agent("Mozilla/5.0 (compatible; Googlebot/2.1)"), "bot");
        assert_eq!(classify_user_agent("curl/8.5.0"), "tool");
        assert_eq!(classify_user_agent("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)"), "mobile");
        assert_eq!(classify_user_agent("Mozilla/5.0 (Windows NT 10.0) Chrome/120"), "browser");
        assert_eq!(classify_user_agent("something"), "other");
    }

    #[test]
    fn custom_log_format() {
        let f = LogFormat::parse(
            r#"log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                  '$status $body_bytes_sent "$http_referer" "$http_user_agent" rt=$request_time uct="$upstream_connect_time"';"#,
        )
        .unwrap();
        let text = "1.2.3.4 - - [10/Oct/2000:13:55:36 +0000] \"POST /a HTTP/1.1\" 201 5 \"-\" \"curl/8\" rt=0.005 uct=\"0.001\"\n";
        let (df, rej) = parse(&f, text);
        assert!(rej.is_empty(), "{rej:?}");
        assert_eq!(df.column("method").unwrap().str().unwrap().get(0), Some("POST"));
        assert!((df.column("latency_ms").unwrap().f64().unwrap().get(0).unwrap() - 5.0).abs() < 1e-9);
    }

    #[test]
    fn json_lines() {
        let text = r#"{"time_iso8601":"2026-11-20T10:00:00+01:00","remote_addr":"2001:db8::1","request":"GET /x?a=1 HTTP/1.1","status":"404","body_bytes_sent":"0","request_time":"0.010","http_user_agent":"Go-http-client/1.1"}
{"msec":"1700000000.500","remote_addr":"1.1.1.1","request_method":"PUT","request_uri":"/y/42","status":204,"body_bytes_sent":0}
{"broken": true"#;
        let (df, rej) = parse(&LogFormat::NginxJson, text);
        assert_eq!(df.height(), 2);
        assert_eq!(rej.len(), 1);
        assert_eq!(rej[0].source_line, 3);
        assert_eq!(df.column("route").unwrap().str().unwrap().get(1), Some("/y/{id}"));
        assert_eq!(df.column("ua_class").unwrap().str().unwrap().get(0), Some("tool"));
    }

    #[test]
    fn bad_lines_are_rejected_with_reasons() {
        let text = "garbage\n1.2.3.4 - - [99/Xyz/2000:13:55:36 +0000] \"GET / HTTP/1.1\" 200 1\n1.2.3.4 - - [10/Oct/2000:13:55:36 +0000] \"GET / HTTP/1.1\" abc 1\n\n";
        let (df, rej) = parse(&LogFormat::Common, text);
        assert_eq!(df.height(), 0);
        let reasons: Vec<_> = rej.iter().map(|r| (r.source_line, r.reason.as_str())).collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(reasons[1].1.contains("unparsable time"));
        assert!(reasons[2].1.contains("status"));
        assert_eq!(reasons[3], (4, "empty line"));
    }

    #[test]
    fn detection_picks_the_format_that_parses() {
        let combined = b"1.2.3.4 - - [10/Oct/2000:13:55:36 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n";
        assert_eq!(LogFormat::detect(combined), Some(LogFormat::Combined));
        let common = b"1.2.3.4 - - [10/Oct/2000:13:55:36 +0000] \"GET / HTTP/1.1\" 200 1\n";
        assert_eq!(LogFormat::detect(common), Some(LogFormat::Common));
        assert_eq!(LogFormat::detect(b"{\"time_local\":\"10/Oct/2000:13:55:36 +0000\",\"status\":200,\"request\":\"GET / HTTP/1.1\"}\n"), Some(LogFormat::NginxJson));
        assert_eq!(LogFormat::detect(b"hello world\n"), None);
    }
}
