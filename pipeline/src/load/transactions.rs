//! Synthetic-transaction files (YAML): parsing and validation. The schema is documented in the
//! parent module. Every check runs while the YAML is read, so an error carries the line, the
//! column and the field path (`transactions[0].steps[1].method`) of the value at fault.

use std::fmt;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Uri};
use regex::Regex;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::jsonpath::JsonPath;
use crate::error::{Error, Result};

/// A parsed, valid transactions file.
#[derive(Debug, Clone)]
pub struct TransactionFile {
    /// Base URL of relative step URLs; `--target` overrides it.
    pub target: Option<String>,
    pub transactions: Vec<Transaction>,
    pub sla: Sla,
}

/// The run's service-level agreement. Neither set: the run has no SLA.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sla {
    /// Fraction of the transactions that must succeed, in [0, 1].
    pub success_threshold: Option<f64>,
    /// Number of failed transactions the run may spend.
    pub error_budget: Option<u64>,
}

/// A named sequence of steps; one arrival runs them in order.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub name: String,
    /// Relative weight among the transactions (default 1).
    pub weight: f64,
    pub steps: Vec<Step>,
}

/// One HTTP request of a transaction and what its response must be.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub method: Method,
    /// A path relative to the target (starting with `/`) or an absolute http(s) URL.
    pub url: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body and its default content type.
    pub body: Option<(Bytes, &'static str)>,
    pub expected_response_code: u16,
    pub validate: Vec<Rule>,
}

/// A check of a response body.
#[derive(Debug, Clone)]
pub enum Rule {
    /// The path selects at least one node (`exists: true`) or none (`exists: false`).
    Exists { path: JsonPath, exists: bool },
    /// The path selects at least one node and every one equals the value.
    Equals { path: JsonPath, value: Value },
    /// The body (no path) or every node the path selects (at least one; strings as they are,
    /// other values as JSON) matches the regex.
    Regex { path: Option<JsonPath>, regex: Regex },
}

impl Rule {
    /// `None` when the body passes, else why not.
    pub fn check(&self, body: &[u8], json: &mut Option<Option<Value>>) -> Option<String> {
        let doc = |json: &mut Option<Option<Value>>| -> Option<Value> {
            json.get_or_insert_with(|| serde_json::from_slice(body).ok()).clone()
        };
        match self {
            Rule::Regex { path: None, regex } => {
                let text = String::from_utf8_lossy(body);
                (!regex.is_match(&text)).then(|| format!("body does not match /{}/", regex.as_str()))
            }
            Rule::Exists { path, exists } => {
                let Some(v) = doc(json) else { return Some("body is not JSON".into()) };
                let found = !path.select(&v).is_empty();
                (found != *exists).then(|| {
                    if *exists { format!("{} selects nothing", path.as_str()) } else { format!("{} exists", path.as_str()) }
                })
            }
            Rule::Equals { path, value } => {
                let Some(v) = doc(json) else { return Some("body is not JSON".into()) };
                let nodes = path.select(&v);
                if nodes.is_empty() {
                    return Some(format!("{} selects nothing", path.as_str()));
                }
                nodes.iter().find(|n| !json_equal(n, value)).map(|n| format!("{} is {n}, expected {value}", path.as_str()))
            }
            Rule::Regex { path: Some(path), regex } => {
                let Some(v) = doc(json) else { return Some("body is not JSON".into()) };
                let nodes = path.select(&v);
                if nodes.is_empty() {
                    return Some(format!("{} selects nothing", path.as_str()));
                }
                nodes
                    .iter()
                    .find(|n| {
                        let s = match n {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        !regex.is_match(&s)
                    })
                    .map(|n| format!("{} is {n}, which does not match /{}/", path.as_str(), regex.as_str()))
            }
        }
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Reads and validates a transactions file.
pub fn load(path: &std::path::Path) -> Result<TransactionFile> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::input(&shown, format!("cannot read: {e}")))?;
    parse(&shown, &text)
}

/// Parses a transactions file's text; `source` names it in errors (`FILE:LINE:COL: field: …`).
pub fn parse(source: &str, text: &str) -> Result<TransactionFile> {
    match yaml_serde::from_str::<RawFile>(text) {
        Ok(raw) => Ok(TransactionFile {
            target: raw.target.map(|t| t.0),
            transactions: raw.transactions.0,
            sla: Sla { success_threshold: raw.sla_success_threshold.map(|f| f.0), error_budget: raw.error_budget },
        }),
        Err(e) => {
            let message = strip_location(&e.to_string());
            let at = match e.location() {
                Some(l) => format!("{source}:{}:{}", l.line(), l.column()),
                None => source.to_string(),
            };
            Err(Error::input(at, message))
        }
    }
}

/// yaml_serde's messages end their first clause with ` at line L column C`; the location is
/// given in front instead.
fn strip_location(msg: &str) -> String {
    let mut out = msg.to_string();
    while let Some(i) = out.find(" at line ") {
        let rest = &out[i + " at line ".len()..];
        let Some(col) = rest.find(" column ") else { break };
        let after = &rest[col + " column ".len()..];
        let digits = after.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || !rest[..col].bytes().all(|b| b.is_ascii_digit()) {
            break;
        }
        let end = i + " at line ".len() + col + " column ".len() + digits;
        out.replace_range(i..end, "");
    }
    if out.is_empty() { msg.to_string() } else { out }
}

// ---- the raw schema, checked while it is read ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    target: Option<TargetUrl>,
    transactions: Transactions,
    sla_success_threshold: Option<Fraction>,
    error_budget: Option<u64>,
}

/// Checks one scalar inside a visitor, so yaml_serde gives the scalar's own line and path.
macro_rules! scalar {
    ($name:ident, $out:ty, $expecting:literal, |$s:ident| $check:expr) => {
        struct $name;
        impl<'de> Visitor<'de> for $name {
            type Value = $out;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($expecting)
            }
            fn visit_str<E: de::Error>(self, $s: &str) -> std::result::Result<$out, E> {
                $check.map_err(E::custom)
            }
        }
    };
}

struct TargetUrl(String);
scalar!(TargetVisitor, TargetUrl, "an http:// or https:// URL", |s| check_base_url(s).map(|_| TargetUrl(s.to_string())));
impl<'de> Deserialize<'de> for TargetUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_str(TargetVisitor)
    }
}

/// Checks a base URL (the target): http or https with a host. The message names no flag.
pub fn check_base_url(s: &str) -> std::result::Result<(), String> {
    let uri: Uri = s.parse().map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(format!("`{s}`: scheme {other} is not http or https")),
        None => return Err(format!("`{s}` is not an http:// or https:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{s}` has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("`{s}`: a target has no query string"));
    }
    Ok(())
}

struct Fraction(f64);
struct FractionVisitor;
impl<'de> Visitor<'de> for FractionVisitor {
    type Value = Fraction;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a fraction in [0, 1]")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Fraction, E> {
        if (0.0..=1.0).contains(&v) { Ok(Fraction(v)) } else { Err(E::custom(format!("{v} is not in [0, 1]"))) }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Fraction, E> {
        self.visit_f64(v as f64)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Fraction, E> {
        self.visit_f64(v as f64)
    }
}
impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_f64(FractionVisitor)
    }
}

struct Weight(f64);
struct WeightVisitor;
impl<'de> Visitor<'de> for WeightVisitor {
    type Value = Weight;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a positive number")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Weight, E> {
        if v.is_finite() && v > 0.0 { Ok(Weight(v)) } else { Err(E::custom(format!("{v} is not a positive number"))) }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Weight, E> {
        self.visit_f64(v as f64)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Weight, E> {
        self.visit_f64(v as f64)
    }
}
impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_f64(WeightVisitor)
    }
}

struct StatusCode(u16);
struct StatusVisitor;
impl<'de> Visitor<'de> for StatusVisitor {
    type Value = StatusCode;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an HTTP status code (100 to 599)")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<StatusCode, E> {
        if (100..=599).contains(&v) {
            Ok(StatusCode(v as u16))
        } else {
            Err(E::custom(format!("{v} is not an HTTP status code (100 to 599)")))
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<StatusCode, E> {
        self.visit_u64(u64::try_from(v).unwrap_or(0))
    }
}
impl<'de> Deserialize<'de> for StatusCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_u64(StatusVisitor)
    }
}

/// The methods a step may use.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

struct StepMethod(Method);
scalar!(MethodVisitor, StepMethod, "an HTTP method", |s| {
    let up = s.to_ascii_uppercase();
    if METHODS.contains(&up.as_str()) {
        Method::from_bytes(up.as_bytes()).map(StepMethod).map_err(|e| e.to_string())
    } else {
        Err(format!("unknown method `{s}` (one of {})", METHODS.join(", ")))
    }
});
impl<'de> Deserialize<'de> for StepMethod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_str(MethodVisitor)
    }
}

struct StepUrl(String);
scalar!(UrlVisitor, StepUrl, "a path starting with / or an http(s) URL", |s| {
    if s.starts_with('/') {
        format!("http://h{s}")
            .parse::<Uri>()
            .map(|_| StepUrl(s.to_string()))
            .map_err(|e| format!("`{s}` is not a valid path: {e}"))
    } else if s.contains("://") {
        check_base_url(s.split('?').next().unwrap_or(s)).and_then(|_| {
            s.parse::<Uri>().map(|_| StepUrl(s.to_string())).map_err(|e| format!("`{s}` is not a URL: {e}"))
        })
    } else {
        Err(format!("`{s}` is neither a path starting with / nor an http(s) URL"))
    }
});
impl<'de> Deserialize<'de> for StepUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_str(UrlVisitor)
    }
}

struct Pattern(Regex);
scalar!(PatternVisitor, Pattern, "a regular expression", |s| Regex::new(s)
    .map(Pattern)
    .map_err(|e| format!("bad regex: {}", e.to_string().replace('\n', " "))));
impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_str(PatternVisitor)
    }
}

struct Path(JsonPath);
scalar!(PathVisitor, Path, "a JSONPath such as $.a.b[0]", |s| JsonPath::parse(s).map(Path));
impl<'de> Deserialize<'de> for Path {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_str(PathVisitor)
    }
}

struct Headers(Vec<(HeaderName, HeaderValue)>);
struct HeadersVisitor;
impl<'de> Visitor<'de> for HeadersVisitor {
    type Value = Headers;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of header names to values")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Headers, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, HeaderText>()? {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| de::Error::custom(format!("`{k}` is not a valid header name")))?;
            let value = HeaderValue::from_str(&v.0)
                .map_err(|_| de::Error::custom(format!("header {k}: the value is not a valid header value")))?;
            out.push((name, value));
        }
        Ok(Headers(out))
    }
}
impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(HeadersVisitor)
    }
}

/// A header value: a string, or a number or boolean written as text.
struct HeaderText(String);
impl<'de> Deserialize<'de> for HeaderText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(HeaderText(s)),
            v @ (Value::Number(_) | Value::Bool(_)) => Ok(HeaderText(v.to_string())),
            _ => Err(de::Error::custom("a header value is a string")),
        }
    }
}

struct Transactions(Vec<Transaction>);
struct TransactionsVisitor;
impl<'de> Visitor<'de> for TransactionsVisitor {
    type Value = Transactions;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of transactions")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Transactions, A::Error> {
        let mut out: Vec<Transaction> = Vec::new();
        while let Some(t) = seq.next_element::<Transaction>()? {
            if out.iter().any(|o| o.name == t.name) {
                return Err(de::Error::custom(format!("[{}].name: duplicate transaction name `{}`", out.len(), t.name)));
            }
            out.push(t);
        }
        if out.is_empty() {
            return Err(de::Error::custom("no transactions: the list is empty"));
        }
        Ok(Transactions(out))
    }
}
impl<'de> Deserialize<'de> for Transactions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_seq(TransactionsVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransaction {
    name: NonEmpty,
    weight: Option<Weight>,
    steps: Vec<RawStep>,
}

struct NonEmpty(String);
scalar!(NonEmptyVisitor, NonEmpty, "a name", |s| if s.trim().is_empty() {
    Err("a name is not empty".to_string())
} else {
    Ok(NonEmpty(s.to_string()))
});
impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_str(NonEmptyVisitor)
    }
}

impl<'de> Deserialize<'de> for Transaction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let raw = RawTransaction::deserialize(d)?;
        if raw.steps.is_empty() {
            return Err(de::Error::custom(format!("transaction `{}`: steps: the list is empty", raw.name.0)));
        }
        let mut steps: Vec<Step> = Vec::with_capacity(raw.steps.len());
        for (i, s) in raw.steps.into_iter().enumerate() {
            let method = s.method.map(|m| m.0).unwrap_or(Method::GET);
            let name = s.name.map(|n| n.0).unwrap_or_else(|| format!("{method} {}", s.url.0));
            if steps.iter().any(|o| o.name == name) {
                return Err(de::Error::custom(format!(
                    "transaction `{}`: steps[{i}].name: duplicate step name `{name}`",
                    raw.name.0
                )));
            }
            let body = s.payload.map(|p| match p {
                Value::String(text) => (Bytes::from(text), "text/plain; charset=utf-8"),
                other => (Bytes::from(other.to_string()), "application/json"),
            });
            steps.push(Step {
                name,
                method,
                url: s.url.0,
                headers: s.headers.map(|h| h.0).unwrap_or_default(),
                body,
                expected_response_code: s.expected_response_code.map_or(200, |c| c.0),
                validate: s.validate.unwrap_or_default().into_iter().map(|r| r.0).collect(),
            });
        }
        Ok(Transaction { name: raw.name.0, weight: raw.weight.map_or(1.0, |w| w.0), steps })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Option<NonEmpty>,
    method: Option<StepMethod>,
    url: StepUrl,
    headers: Option<Headers>,
    payload: Option<Value>,
    expected_response_code: Option<StatusCode>,
    validate: Option<Vec<RawRuleChecked>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    jsonpath: Option<Path>,
    equals: Option<Value>,
    exists: Option<bool>,
    regex: Option<Pattern>,
}

struct RawRuleChecked(Rule);
impl<'de> Deserialize<'de> for RawRuleChecked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let r = RawRule::deserialize(d)?;
        let bad = |m: &str| Err(de::Error::custom(m.to_string()));
        let given = usize::from(r.equals.is_some()) + usize::from(r.exists.is_some()) + usize::from(r.regex.is_some());
        if given > 1 {
            return bad("a rule has one of equals, exists and regex");
        }
        let rule = match (r.jsonpath, r.equals, r.exists, r.regex) {
            (Some(p), Some(v), None, None) => Rule::Equals { path: p.0, value: v },
            (Some(p), None, Some(e), None) => Rule::Exists { path: p.0, exists: e },
            (Some(p), None, None, None) => Rule::Exists { path: p.0, exists: true },
            (p, None, None, Some(re)) => Rule::Regex { path: p.map(|p| p.0), regex: re.0 },
            (None, Some(_), _, _) | (None, _, Some(_), _) => return bad("equals and exists need a jsonpath"),
            _ => return bad("a rule needs a jsonpath or a regex"),
        };
        Ok(RawRuleChecked(rule))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse("t.yaml", text).unwrap_err().to_string()
    }

    #[test]
    fn a_full_file() {
        let f = parse(
            "t.yaml",
            r#"
target: http://localhost:8080/api
sla_success_threshold: 0.99
error_budget: 5
transactions:
  - name: checkout
    weight: 3
    steps:
      - name: login
        method: post
        url: /login
        headers: {X-Trace: abc, X-N: 1}
        payload: {user: a, n: [1, 2]}
        validate:
          - jsonpath: $.token
          - jsonpath: $.user.id
            equals: 7
          - jsonpath: $.items[*].ok
            exists: false
      - url: https://other.example/x?q=1
        expected_response_code: 204
        payload: "raw text"
        validate:
          - regex: "^ok"
          - jsonpath: $.id
            regex: "^[0-9]+$"
"#,
        )
        .unwrap();
        assert_eq!(f.target.as_deref(), Some("http://localhost:8080/api"));
        assert_eq!(f.sla, Sla { success_threshold: Some(0.99), error_budget: Some(5) });
        let t = &f.transactions[0];
        assert_eq!((t.name.as_str(), t.weight), ("checkout", 3.0));
        assert_eq!(t.steps[0].method, Method::POST);
        assert_eq!(t.steps[0].headers.len(), 2);
        assert_eq!(t.steps[0].body.as_ref().unwrap().0, Bytes::from(r#"{"n":[1,2],"user":"a"}"#));
        assert_eq!(t.steps[0].validate.len(), 3);
        assert_eq!(t.steps[0].expected_response_code, 200);
        assert_eq!(t.steps[1].name, "GET https://other.example/x?q=1");
        assert_eq!(t.steps[1].expected_response_code, 204);
        assert_eq!(t.steps[1].body.as_ref().unwrap().1, "text/plain; charset=utf-8");
    }

    #[test]
    fn errors_name_line_column_and_field() {
        let head = "transactions:\n  - name: a\n    steps:\n";
        for (body, want) in [
            ("      - name: s\n", "t.yaml:4:9: transactions[0].steps[0]: missing field `url`"),
            ("      - url: /x\n        method: FETCH\n", "t.yaml:5:17: transactions[0].steps[0].method: unknown method `FETCH`"),
            ("      - url: /x\n        validate:\n          - regex: '(['\n", "t.yaml:6:20: transactions[0].steps[0].validate[0].regex: bad regex"),
            ("      - url: /x\n        validate:\n          - jsonpath: 'a.b'\n", "t.yaml:6:23: transactions[0].steps[0].validate[0].jsonpath: `a.b`: a path starts with `$`"),
            ("      - url: /x\n        bogus: 1\n", "t.yaml:5:9: transactions[0].steps[0]: unknown field `bogus`"),
            ("      - url: x\n", "t.yaml:4:14: transactions[0].steps[0].url: `x` is neither a path"),
            ("      - url: /x\n        expected_response_code: 700\n", "t.yaml:5:33: transactions[0].steps[0].expected_response_code: 700 is not an HTTP status code"),
            ("      - url: /x\n        validate:\n          - jsonpath: $.a\n            equals: 1\n            exists: true\n", "t.yaml:6:11: transactions[0].steps[0].validate: a rule has one of equals, exists and regex"),
        ] {
            let e = err(&format!("{head}{body}"));
            assert!(e.starts_with(want), "got: {e}\nwant: {want}");
            assert!(!e.contains(" at line "), "{e}");
        }
        let e = err("sla_success_threshold: 1.5\ntransactions: []\n");
        assert!(e.starts_with("t.yaml:1:24: sla_success_threshold: 1.5 is not in [0, 1]"), "{e}");
        let e = err("transactions: []\n");
        assert!(e.starts_with("t.yaml:1:15: transactions: no transactions"), "{e}");
        let e = err("target: ftp://x\ntransactions: []\n");
        assert!(e.starts_with("t.yaml:1:9: target: `ftp://x`: scheme ftp"), "{e}");
        let e = err("transactions: [\n");
        assert!(e.starts_with("t.yaml:2:1: "), "{e}");
        let e = err("transactions:\n  - name: a\n    steps: []\n");
        assert!(e.contains("transaction `a`: steps: the list is empty"), "{e}");
    }

    #[test]
    fn rules_check_bodies() {
        let f = parse(
            "t.yaml",
            "transactions:\n  - name: a\n    steps:\n      - url: /x\n        validate:\n          - jsonpath: $.a[*].n\n            equals: 1\n          - jsonpath: $.s\n            regex: '^o'\n          - regex: '\"s\"'\n          - jsonpath: $.none\n            exists: false\n",
        )
        .unwrap();
        let rules = &f.transactions[0].steps[0].validate;
        let check = |body: &str| -> Vec<Option<String>> {
            let mut j = None;
            rules.iter().map(|r| r.check(body.as_bytes(), &mut j)).collect()
        };
        assert_eq!(check(r#"{"a": [{"n": 1}, {"n": 1.0}], "s": "ok"}"#), vec![None, None, None, None]);
        let r = check(r#"{"a": [{"n": 1}, {"n": 2}], "s": "ko", "none": 0}"#);
        assert_eq!(r[0].as_deref(), Some("$.a[*].n is 2, expected 1"));
        assert_eq!(r[1].as_deref(), Some("$.s is \"ko\", which does not match /^o/"));
        assert_eq!(r[3].as_deref(), Some("$.none exists"));
        assert_eq!(check("not json")[0].as_deref(), Some("body is not JSON"));
    }
}
