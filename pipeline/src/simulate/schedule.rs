//! Deployments: when a service deploys, which commits each deployment ships, how risky that
//! change is, and what happens to it — a failure mode with its effect, or nothing — plus the
//! false-alarm bait (noisy canaries, missing data).
//!
//! The risk is computed from the very commits written to git (their size, spread, entropy,
//! authors' experience, file kinds, fix messages) and from the deployment's hour, so the Kamei
//! features omen computes carry the signal.

use omen_features::feature::FileKind;
use serde::Serialize;

use super::repo::CommitInfo;
use super::rng::Rng;
use super::traffic::{US_PER_DAY, US_PER_HOUR, US_PER_MIN, US_PER_S, hour, weekday};

/// The canary's weight ladder (percent) and the minutes after the start each step is planned.
pub const WEIGHTS: [f64; 5] = [5.0, 10.0, 25.0, 50.0, 100.0];
pub const STEP_MINUTES: [i64; 5] = [0, 10, 20, 30, 45];
/// Minutes at 100 % before the rollout ends.
pub const FULL_MINUTES: i64 = 15;

/// How a deployment fails, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    None,
    ErrorSpike,
    LatencyShift,
    MemoryLeak,
    Saturation,
}

impl FailureMode {
    pub const FAILING: [FailureMode; 4] =
        [FailureMode::ErrorSpike, FailureMode::LatencyShift, FailureMode::MemoryLeak, FailureMode::Saturation];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureMode::None => "none",
            FailureMode::ErrorSpike => "error_spike",
            FailureMode::LatencyShift => "latency_shift",
            FailureMode::MemoryLeak => "memory_leak",
            FailureMode::Saturation => "saturation",
        }
    }
}

/// False-alarm bait: a healthy-looking problem in the canary's data that is not a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bait {
    None,
    /// Three times the usual noise, and a few short spikes.
    Noisy,
    /// No canary samples at all for a stretch (a scrape outage).
    NodataGap,
    /// One canary metric never reported (an exporter missing on the new pods).
    MissingMetric,
}

impl Bait {
    pub fn as_str(self) -> &'static str {
        match self {
            Bait::None => "none",
            Bait::Noisy => "noisy",
            Bait::NodataGap => "nodata_gap",
            Bait::MissingMetric => "missing_metric",
        }
    }
}

/// What a deployment ships, summarised as the risk model sees it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Change {
    pub commits: usize,
    pub la: u64,
    pub ld: u64,
    /// Distinct paths touched.
    pub files: usize,
    /// Distinct first path components over the range.
    pub subsystems: usize,
    pub entropy_max: f64,
    /// The least experienced author's earlier commits (Kamei's EXP); null for an empty range.
    pub min_author_exp: Option<u32>,
    pub fix: bool,
    pub migration: bool,
    pub dependency: bool,
    /// Every touched file is documentation or a test.
    pub docs_or_tests_only: bool,
    /// Started between 22:00 and 06:00 UTC.
    pub night: bool,
    pub weekend: bool,
}

impl Change {
    pub fn of(commits: &[CommitInfo], start: i64) -> Change {
        let mut paths = std::collections::BTreeSet::new();
        let mut subs = std::collections::BTreeSet::new();
        let mut c = Change { commits: commits.len(), ..Default::default() };
        for k in commits {
            c.la += k.la();
            c.ld += k.ld();
            c.entropy_max = c.entropy_max.max(k.entropy());
            c.min_author_exp = Some(c.min_author_exp.map_or(k.exp, |m| m.min(k.exp)));
            c.fix |= k.fix;
            for f in &k.files {
                paths.insert(f.path.as_str());
                subs.insert(f.path.split_once('/').map_or("", |(a, _)| a));
            }
        }
        c.files = paths.len();
        c.subsystems = subs.len();
        let kinds: Vec<FileKind> = paths.iter().map(|p| FileKind::of(p)).collect();
        c.migration = kinds.contains(&FileKind::Migration);
        c.dependency = kinds.contains(&FileKind::Dependency);
        c.docs_or_tests_only = !kinds.is_empty() && kinds.iter().all(|k| matches!(k, FileKind::Docs | FileKind::Test));
        let h = hour(start);
        c.night = !(6..22).contains(&h);
        c.weekend = weekday(start) >= 5;
        c
    }

    /// The log-odds of failure: the documented risk model (docs/simulator.md).
    pub fn logit(&self, fragility: f64) -> f64 {
        let mut z = BASE_LOGIT + fragility;
        if self.commits == 0 {
            return z - 1.0;
        }
        z += 0.45 * (1.0 + (self.la + self.ld) as f64 / 100.0).ln();
        z += 0.25 * (self.subsystems.saturating_sub(1)).min(3) as f64;
        z += 0.50 * self.entropy_max;
        z += 0.15 * (self.commits as f64).ln();
        if self.night {
            z += 0.9;
        }
        if self.weekend {
            z += 0.3;
        }
        match self.min_author_exp {
            Some(e) if e < 10 => z += 0.8,
            Some(e) if e < 40 => z += 0.3,
            _ => {}
        }
        if self.migration {
            z += 0.6;
        }
        if self.dependency {
            z += 0.45;
        }
        if self.fix {
            z += 0.3;
        }
        if self.docs_or_tests_only {
            z -= 1.5;
        }
        z
    }
}

/// The intercept of the risk model: about one deployment in eight fails.
pub const BASE_LOGIT: f64 = -4.4;

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// How strongly a failure shows, drawn per deployment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Effect {
    /// Minutes after the start from which the effect is present (the leak grows from it).
    pub onset_minute: f64,
    /// Error spike: added error probability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate_added: Option<f64>,
    /// Latency shift: factor on p50 (p99 moves 1.3 times as far).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_factor: Option<f64>,
    /// Memory leak: growth per minute as a fraction of the service's memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak_per_minute: Option<f64>,
    /// Saturation: added utilisation at 100 % traffic (none at or below 50 %).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saturation_at_full: Option<f64>,
}

/// Noise and gaps of the bait, drawn per deployment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BaitDetail {
    /// Minutes of the spikes of a noisy canary.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spikes_minute: Vec<i64>,
    /// The canary's data gap, minutes after the start `[from, to)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_minutes: Option<(i64, i64)>,
    /// The metric the canary never reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_metric: Option<String>,
}

/// One deployment of a service.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub id: String,
    pub version: String,
    /// Index of the last commit of the previous release, and of the commit shipped.
    pub from_commit: usize,
    pub to_commit: usize,
    pub start: i64,
    pub end: i64,
    /// `(at µs, weight %)`, ascending.
    pub steps: Vec<(i64, f64)>,
    pub change: Change,
    pub p_failure: f64,
    pub mode: FailureMode,
    pub effect: Effect,
    pub bait: Bait,
    pub bait_detail: BaitDetail,
}

impl Deployment {
    /// When the weight reached 100 %.
    pub fn full_at(&self) -> i64 {
        self.steps.last().map_or(self.end, |s| s.0)
    }

    /// The canary's weight at `t`.
    pub fn weight_at(&self, t: i64) -> f64 {
        self.steps.iter().rev().find(|s| s.0 <= t).map_or(0.0, |s| s.1)
    }
}

/// Parameters of a service's deployment process.
#[derive(Debug, Clone)]
pub struct SchedulePlan {
    pub start: i64,
    pub end: i64,
    /// Mean deployments per working day.
    pub per_day: f64,
    /// The service's own extra log-odds of failure.
    pub fragility: f64,
}

/// The gauges a canary may fail to report (the bait `missing_metric`).
pub const GAUGES: [&str; 5] = [
    "http_request_duration_seconds_p50",
    "http_request_duration_seconds_p99",
    "cpu_utilization",
    "process_resident_memory_bytes",
    "worker_saturation_ratio",
];

/// Draws the deployments of a service over `commits` (oldest first).
pub fn deployments(rng: &mut Rng, plan: &SchedulePlan, service: &str, commits: &[CommitInfo]) -> Vec<Deployment> {
    let rollout = (STEP_MINUTES[4] + FULL_MINUTES + 3) * US_PER_MIN;
    let mut starts = Vec::new();
    let first_day = plan.start.div_euclid(US_PER_DAY);
    let last_day = (plan.end - 1).div_euclid(US_PER_DAY);
    for day in first_day..=last_day {
        let d0 = day * US_PER_DAY;
        let mean = if weekday(d0) >= 5 { 0.1 * plan.per_day } else { plan.per_day };
        let mut day_starts: Vec<i64> = (0..rng.poisson(mean))
            .map(|_| {
                let h = if rng.bernoulli(0.1) { rng.uniform(22.0, 30.0) % 24.0 } else { (13.0 + 2.5 * rng.normal()).clamp(7.0, 20.5) };
                let t = d0 + (h * US_PER_HOUR as f64) as i64;
                t - t.rem_euclid(US_PER_S)
            })
            .collect();
        day_starts.sort_unstable();
        starts.extend(day_starts);
    }
    starts.sort_unstable();
    // Rollouts of one service do not overlap, and all end inside the simulated period.
    // A deployment planned while another is rolling out waits for it (and 15 to 35 minutes).
    let mut kept: Vec<i64> = Vec::new();
    for t in starts {
        let t = match kept.last() {
            Some(&p) if t < p + rollout + 15 * US_PER_MIN => p + rollout + 15 * US_PER_MIN + rng.range(0, 1200) * US_PER_S,
            _ => t,
        };
        if t >= plan.start && t + rollout <= plan.end {
            kept.push(t);
        }
    }
    let tip_before = |t: i64| commits.partition_point(|c| c.time < t).saturating_sub(1);
    let mut from = tip_before(plan.start);
    let mut out = Vec::with_capacity(kept.len());
    for start in kept {
        let to = tip_before(start).max(from);
        // Nothing new to ship: usually no deployment; sometimes a redeploy of the same commit.
        if to == from && rng.bernoulli(0.85) {
            continue;
        }
        let n = out.len();
        let change = Change::of(&commits[from + 1..=to], start);
        let p_failure = sigmoid(change.logit(plan.fragility));
        let failed = rng.bernoulli(p_failure);
        let mode = if failed { pick_mode(rng, &change) } else { FailureMode::None };
        let effect = effect(rng, mode);
        let mut steps = Vec::with_capacity(WEIGHTS.len());
        for (i, (&w, &m)) in WEIGHTS.iter().zip(&STEP_MINUTES).enumerate() {
            // Each promotion lands up to a minute after it was planned (pipeline latency).
            let jitter = if i == 0 { 0 } else { rng.range(0, 59) * US_PER_S };
            steps.push((start + m * US_PER_MIN + jitter, w));
        }
        let end = steps[4].0 + FULL_MINUTES * US_PER_MIN + rng.range(0, 120) * US_PER_S;
        let (bait, bait_detail) = bait(rng);
        out.push(Deployment {
            id: format!("{service}-{:04}", n + 1),
            version: format!("1.{}.0", n + 1),
            from_commit: from,
            to_commit: to,
            start,
            end,
            steps,
            change,
            p_failure,
            mode,
            effect,
            bait,
            bait_detail,
        });
        from = to;
    }
    out
}

/// The failure mode of a failing change: error spikes most often; migrations saturate and slow
/// down, dependency bumps leak, configuration and fixes break outright.
fn pick_mode(rng: &mut Rng, c: &Change) -> FailureMode {
    let mut w = [0.35, 0.25, 0.20, 0.20];
    if c.migration {
        w[3] *= 2.5;
        w[1] *= 1.5;
    }
    if c.dependency {
        w[2] *= 2.5;
    }
    if c.fix {
        w[0] *= 1.3;
    }
    FailureMode::FAILING[rng.weighted(&w)]
}

fn effect(rng: &mut Rng, mode: FailureMode) -> Effect {
    let mut e = Effect::default();
    match mode {
        FailureMode::None => {}
        FailureMode::ErrorSpike => {
            e.onset_minute = rng.uniform(0.0, 3.0);
            e.error_rate_added = Some(rng.lognormal(0.025f64.ln(), 0.7).clamp(0.008, 0.25));
        }
        FailureMode::LatencyShift => {
            e.onset_minute = rng.uniform(0.0, 2.0);
            e.latency_factor = Some(1.0 + rng.lognormal(0.45f64.ln(), 0.4).clamp(0.2, 2.0));
        }
        FailureMode::MemoryLeak => {
            e.onset_minute = rng.uniform(0.0, 5.0);
            e.leak_per_minute = Some(rng.uniform(0.0006, 0.0014));
        }
        FailureMode::Saturation => {
            e.onset_minute = 0.0;
            e.saturation_at_full = Some(rng.uniform(0.35, 0.6));
        }
    }
    e
}

fn bait(rng: &mut Rng) -> (Bait, BaitDetail) {
    let b = [Bait::None, Bait::Noisy, Bait::NodataGap, Bait::MissingMetric][rng.weighted(&[0.84, 0.08, 0.06, 0.02])];
    let mut d = BaitDetail::default();
    match b {
        Bait::None => {}
        Bait::Noisy => {
            let mut s: Vec<i64> = (0..rng.range(1, 3)).map(|_| rng.range(1, 55)).collect();
            s.sort_unstable();
            s.dedup();
            d.spikes_minute = s;
        }
        Bait::NodataGap => {
            let from = rng.range(0, 30);
            d.gap_minutes = Some((from, from + rng.range(5, 20)));
        }
        Bait::MissingMetric => d.missing_metric = Some(rng.pick(&GAUGES).to_string()),
    }
    (b, d)
}

#[cfg(test)]
mod tests {
    use super::super::repo::{RepoPlan, generate};
    use super::*;

    #[test]
    fn deployments_are_ordered_and_ship_consecutive_ranges() {
        let plan = RepoPlan { history_start: 0, end: 60 * US_PER_DAY, commits_per_day: 3.0, domain: "example.com".into() };
        let repo = generate(&mut Rng::new(1), &plan, "svc");
        let sp = SchedulePlan { start: 20 * US_PER_DAY, end: 60 * US_PER_DAY, per_day: 2.0, fragility: 0.0 };
        let deps = deployments(&mut Rng::new(2), &sp, "svc", &repo.commits);
        assert!(deps.len() > 25, "{}", deps.len());
        for w in deps.windows(2) {
            assert!(w[0].end < w[1].start, "overlapping rollouts");
            assert_eq!(w[0].to_commit, w[1].from_commit, "ranges are not consecutive");
        }
        for d in &deps {
            assert!(d.steps.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1), "steps not monotone: {:?}", d.steps);
            assert_eq!(d.steps[0].0, d.start);
            assert_eq!(d.steps.last().unwrap().1, 100.0);
            assert!(d.end > d.full_at() && d.end <= sp.end);
            assert!(d.to_commit >= d.from_commit);
            assert!(repo.commits[d.to_commit].time < d.start, "ships a commit from the future");
            assert!((0.0..=1.0).contains(&d.p_failure));
            let e = &d.effect;
            let effects = [e.error_rate_added, e.latency_factor, e.leak_per_minute, e.saturation_at_full];
            assert_eq!(effects.iter().filter(|x| x.is_some()).count(), usize::from(d.mode != FailureMode::None));
        }
    }

    #[test]
    fn risk_rises_with_size_spread_night_and_inexperience() {
        let base = Change { commits: 1, la: 10, ld: 2, files: 1, subsystems: 1, min_author_exp: Some(200), ..Default::default() };
        let z = base.logit(0.0);
        for bigger in [
            Change { la: 2000, ..base.clone() },
            Change { subsystems: 4, ..base.clone() },
            Change { night: true, ..base.clone() },
            Change { min_author_exp: Some(2), ..base.clone() },
            Change { migration: true, ..base.clone() },
        ] {
            assert!(bigger.logit(0.0) > z, "{bigger:?}");
        }
        assert!(Change { docs_or_tests_only: true, ..base.clone() }.logit(0.0) < z);
    }
}
