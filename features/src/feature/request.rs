//! Request vectors for behavioural profiles (`omen profiles fit`): one vector per access-log
//! request, the one implementation shared by fitting, assignment and whatever scores requests
//! later.
//!
//! Columns, in order:
//! - `route_group=<g>` for the most frequent route groups (the first two segments of the
//!   templated route: `/api/users/{id}` → `/api/users`), and `route_group=other`;
//! - `method=<m>` for GET, POST, PUT, PATCH, DELETE, and `method=other`;
//! - `log_bytes`: ln(1 + response bytes), 0 when the log has none;
//! - `log_latency_ms`: ln(1 + latency in ms), 0 when the log has none;
//! - `status=2xx` … `status=5xx` (1xx and others count as none of them);
//! - `ua=<class>` for browser, bot, mobile, tool, other;
//! - `tod_sin`, `tod_cos`: the UTC time of day as a point on the circle, so 23:59 is next to 00:00;
//! - `log_inter_arrival_s`: ln(1 + seconds since the same client's previous request), capped at
//!   30 minutes (a new session).
//!
//! Every column is then standardised (z-score over the fitting data; a constant column is left
//! at 0), so no unit dominates the distances.

use serde::{Deserialize, Serialize};

/// Longest gap that still belongs to one session, seconds.
pub const SESSION_GAP_S: f64 = 1800.0;
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const STATUS: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];
const UA: [&str; 5] = ["browser", "bot", "mobile", "tool", "other"];

/// One request as the vector needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestRow<'a> {
    /// µs UTC.
    pub ts: i64,
    pub method: &'a str,
    pub route: &'a str,
    pub status: i32,
    pub bytes: Option<i64>,
    pub latency_ms: Option<f64>,
    pub ua_class: &'a str,
    /// Seconds since the same client's previous request (`None` for its first).
    pub inter_arrival_s: Option<f64>,
}

/// The route group of a templated route: its first two segments.
pub fn route_group(route: &str) -> String {
    let mut out = String::new();
    for seg in route.split('/').filter(|s| !s.is_empty()).take(2) {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() { "/".into() } else { out }
}

/// The vector space: the route groups kept and the scaling, fitted once and stored with a
/// profile set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestSpace {
    pub route_groups: Vec<String>,
    pub means: Vec<f64>,
    pub stds: Vec<f64>,
}

impl RequestSpace {
    /// Fits the space: the `max_groups` most frequent route groups (ties by name), then the
    /// mean and standard deviation of every raw column over `rows` with `weights`.
    pub fn fit<'a>(rows: impl Iterator<Item = (RequestRow<'a>, f64)> + Clone, max_groups: usize) -> RequestSpace {
        let mut counts: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
        for (r, w) in rows.clone() {
            *counts.entry(route_group(r.route)).or_default() += w;
        }
        let mut groups: Vec<(String, f64)> = counts.into_iter().collect();
        groups.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let route_groups: Vec<String> = groups.into_iter().take(max_groups).map(|g| g.0).collect();
        let mut space = RequestSpace { route_groups, means: Vec::new(), stds: Vec::new() };
        let d = space.columns().len();
        let (mut sum, mut sq, mut total) = (vec![0.0; d], vec![0.0; d], 0.0);
        for (r, w) in rows {
            for (j, v) in space.raw(&r).into_iter().enumerate() {
                sum[j] += w * v;
                sq[j] += w * v * v;
            }
            total += w;
        }
        let total = if total > 0.0 { total } else { 1.0 };
        space.means = sum.iter().map(|s| s / total).collect();
        space.stds = sq.iter().zip(&space.means).map(|(q, m)| (q / total - m * m).max(0.0).sqrt()).collect();
        space
    }

    /// Column names, in vector order.
    pub fn columns(&self) -> Vec<String> {
        let mut c: Vec<String> = self.route_groups.iter().map(|g| format!("route_group={g}")).collect();
        c.push("route_group=other".into());
        c.extend(METHODS.iter().map(|m| format!("method={m}")));
        c.push("method=other".into());
        c.push("log_bytes".into());
        c.push("log_latency_ms".into());
        c.extend(STATUS.iter().map(|s| format!("status={s}")));
        c.extend(UA.iter().map(|u| format!("ua={u}")));
        c.extend(["tod_sin".into(), "tod_cos".into(), "log_inter_arrival_s".into()]);
        c
    }

    /// The unscaled vector of a request.
    pub fn raw(&self, r: &RequestRow<'_>) -> Vec<f64> {
        let mut v = Vec::with_capacity(self.route_groups.len() + 24);
        let g = route_group(r.route);
        let hit = self.route_groups.iter().position(|x| *x == g);
        v.extend((0..self.route_groups.len()).map(|i| f64::from(u8::from(hit == Some(i)))));
        v.push(f64::from(u8::from(hit.is_none())));
        let m = METHODS.iter().position(|x| *x == r.method);
        v.extend((0..METHODS.len()).map(|i| f64::from(u8::from(m == Some(i)))));
        v.push(f64::from(u8::from(m.is_none())));
        v.push(r.bytes.map_or(0.0, |b| (b.max(0) as f64).ln_1p()));
        v.push(r.latency_ms.filter(|x| x.is_finite()).map_or(0.0, |l| l.max(0.0).ln_1p()));
        let class = (r.status / 100) as usize;
        v.extend((2..=5).map(|c| f64::from(u8::from(class == c))));
        let u = UA.iter().position(|x| *x == r.ua_class).unwrap_or(UA.len() - 1);
        v.extend((0..UA.len()).map(|i| f64::from(u8::from(u == i))));
        let day_s = (r.ts.rem_euclid(86_400_000_000)) as f64 / 1e6;
        let angle = std::f64::consts::TAU * day_s / 86_400.0;
        v.push(angle.sin());
        v.push(angle.cos());
        v.push(r.inter_arrival_s.unwrap_or(SESSION_GAP_S).clamp(0.0, SESSION_GAP_S).ln_1p());
        v
    }

    /// The standardised vector of a request.
    pub fn vector(&self, r: &RequestRow<'_>) -> Vec<f64> {
        let mut v = self.raw(r);
        self.scale(&mut v);
        v
    }

    /// Standardises a raw vector in place.
    pub fn scale(&self, v: &mut [f64]) {
        for (j, x) in v.iter_mut().enumerate() {
            let s = self.stds.get(j).copied().unwrap_or(0.0);
            *x = if s > 1e-12 { (*x - self.means[j]) / s } else { 0.0 };
        }
    }

    /// A scaled vector back in raw units.
    pub fn unscale(&self, v: &[f64]) -> Vec<f64> {
        v.iter().enumerate().map(|(j, x)| x * self.stds.get(j).copied().unwrap_or(0.0) + self.means.get(j).copied().unwrap_or(0.0)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(route: &'static str, ts_s: i64) -> RequestRow<'static> {
        RequestRow { ts: ts_s * 1_000_000, method: "GET", route, status: 200, bytes: Some(100), latency_ms: Some(12.0), ua_class: "browser", inter_arrival_s: Some(3.0) }
    }

    #[test]
    fn vectors_have_the_documented_columns_and_midnight_wraps() {
        assert_eq!(route_group("/api/users/{id}/orders"), "/api/users");
        assert_eq!(route_group("/"), "/");
        let rows = [row("/api/users/{id}", 0), row("/api/users/{id}", 1), row("/static/app.js", 2)];
        let space = RequestSpace::fit(rows.iter().map(|r| (*r, 1.0)), 8);
        assert_eq!(space.route_groups, ["/api/users", "/static/app.js"]);
        let cols = space.columns();
        assert_eq!(cols.len(), space.raw(&rows[0]).len());
        assert_eq!(cols[0], "route_group=/api/users");
        // 23:59:59 and 00:00:01 are close on the circle.
        let (a, b) = (space.raw(&row("/x", 86_399)), space.raw(&row("/x", 86_401)));
        let n = cols.len();
        assert!((a[n - 3] - b[n - 3]).abs() < 1e-3 && (a[n - 2] - b[n - 2]).abs() < 1e-6);
        // Standardised columns have mean 0 over the fitting rows; constant ones are 0.
        let vs: Vec<Vec<f64>> = rows.iter().map(|r| space.vector(r)).collect();
        for j in 0..n {
            let m: f64 = vs.iter().map(|v| v[j]).sum::<f64>() / 3.0;
            assert!(m.abs() < 1e-9, "{}: {m}", cols[j]);
        }
        let back = space.unscale(&vs[0]);
        let raw = space.raw(&rows[0]);
        for j in 0..n {
            if space.stds[j] > 0.0 {
                assert!((back[j] - raw[j]).abs() < 1e-9);
            }
        }
    }
}
