//! The decision policy: from the judge's verdicts, the failure probability and its confidence,
//! and the predicted performance at 100 % traffic, to `PROMOTE` / `CONTINUE` / `HOLD` /
//! `ROLLBACK` and the next traffic weight. Configured under `[serve.policy]` of `omen.toml`;
//! `omen-serve`'s crate docs give the rules in order. It lives here, not in `omen-serve`, so that
//! `omen evaluate` replays held-out canaries through the very decisions the server makes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::judge::Classification;
use crate::sequence::SloBreach;

/// `[serve.policy]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// The weight ladder, percent, ascending, ending at 100. The first step is the initial weight.
    pub steps: Vec<f64>,
    /// A failure probability at or above this (with enough confidence) rolls back: omen predicts
    /// the failure before the judge can see it.
    pub rollback_probability: f64,
    /// A canary is *healthy*, and may advance, once its probability is at or below this …
    pub advance_probability: f64,
    /// … and stays healthy until it rises above this (hysteresis: between the two the previous
    /// state holds, so weights do not flap on noise).
    pub hold_probability: f64,
    /// Below this confidence the answer is `HOLD`: look again rather than act on a guess.
    pub min_confidence: f64,
    /// Consecutive healthy answers a stream needs before each step up (unary calls are
    /// stateless and count one).
    pub stable_checks: u32,
    /// Consecutive answers at or above `rollback_probability` a stream needs before the
    /// predictive rollback below 100 % traffic (1: the first; unary calls are stateless and count
    /// one; at 100 % every user is exposed and one is enough). Between the first and the last the
    /// answer is `HOLD`: one noisy window does not roll back alone. The judge's and the SLOs'
    /// rollbacks do not wait.
    pub rollback_checks: u32,
    /// What missing data does (half or more of the judged metrics `NODATA`): `hold` (look again,
    /// the default) or `rollback`.
    pub nodata: NodataAction,
    /// A stream that has held this many times in a row rolls back (0: hold for ever).
    pub max_holds: u32,
    /// Upper bounds per metric (SLOs). On the predicted performance at 100 % traffic: a point
    /// above the bound holds, a 95 % interval entirely above it rolls back. On the sequence
    /// model's forecast of the canary: see `breach_rollback_probability`.
    pub slo: BTreeMap<String, f64>,
    /// Per service (`[serve.policy.services.<service>.slo]`): bounds that replace `slo`'s for the
    /// metrics they name (a latency bound of one service means nothing for another).
    pub services: BTreeMap<String, ServicePolicy>,
    /// When the sequence model (`omen-sequence`) forecasts that a metric breaches its SLO
    /// within the forecast horizon with at least this probability: roll back, before the
    /// breach …
    pub breach_rollback_probability: f64,
    /// … and with at least this probability: hold.
    pub breach_hold_probability: f64,
}

/// `[serve.policy.services.<service>]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServicePolicy {
    pub slo: BTreeMap<String, f64>,
}

/// What `NODATA` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodataAction {
    Hold,
    Rollback,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            steps: vec![5.0, 10.0, 25.0, 50.0, 100.0],
            rollback_probability: 0.7,
            advance_probability: 0.2,
            hold_probability: 0.35,
            min_confidence: 0.65,
            stable_checks: 2,
            rollback_checks: 1,
            nodata: NodataAction::Hold,
            max_holds: 0,
            slo: BTreeMap::new(),
            services: BTreeMap::new(),
            breach_rollback_probability: 0.9,
            breach_hold_probability: 0.5,
        }
    }
}

/// A [`PolicyConfig`] that passed [`PolicyConfig::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    cfg: PolicyConfig,
    /// Per service with overrides: `slo` with them applied.
    slo_by_service: BTreeMap<String, BTreeMap<String, f64>>,
}

impl PolicyConfig {
    /// Validates once; errors name the field.
    pub fn check(self) -> Result<Policy> {
        let bad = |field: &str, m: String| Err(Error::InvalidParam { field: format!("serve.policy.{field}"), reason: m });
        if self.steps.is_empty() || self.steps.windows(2).any(|w| w[0] >= w[1]) {
            return bad("steps", "must be ascending and not empty".into());
        }
        if self.steps.iter().any(|w| !(*w > 0.0 && *w <= 100.0)) || self.steps.last() != Some(&100.0) {
            return bad("steps", "weights lie in (0, 100] and the last is 100".into());
        }
        for (f, v) in [
            ("rollback_probability", self.rollback_probability),
            ("advance_probability", self.advance_probability),
            ("hold_probability", self.hold_probability),
            ("min_confidence", self.min_confidence),
            ("breach_rollback_probability", self.breach_rollback_probability),
            ("breach_hold_probability", self.breach_hold_probability),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(f, format!("must lie in [0, 1], got {v}"));
            }
        }
        if !(self.advance_probability <= self.hold_probability && self.hold_probability < self.rollback_probability) {
            return bad(
                "hold_probability",
                format!(
                    "needs advance_probability ≤ hold_probability < rollback_probability, got {} / {} / {}",
                    self.advance_probability, self.hold_probability, self.rollback_probability
                ),
            );
        }
        if self.breach_hold_probability > self.breach_rollback_probability {
            return bad(
                "breach_hold_probability",
                format!(
                    "must not exceed breach_rollback_probability, got {} > {}",
                    self.breach_hold_probability, self.breach_rollback_probability
                ),
            );
        }
        if self.stable_checks == 0 {
            return bad("stable_checks", "must be at least 1".into());
        }
        if self.rollback_checks == 0 {
            return bad("rollback_checks", "must be at least 1".into());
        }
        let slos = std::iter::once(("slo".to_string(), &self.slo))
            .chain(self.services.iter().map(|(s, p)| (format!("services.{s}.slo"), &p.slo)));
        for (at, slo) in slos {
            if let Some((m, v)) = slo.iter().find(|(_, v)| !v.is_finite()) {
                return bad(&format!("{at}.{m}"), format!("must be a finite number, got {v}"));
            }
        }
        let slo_by_service = self
            .services
            .iter()
            .map(|(s, p)| {
                let mut m = self.slo.clone();
                m.extend(p.slo.iter().map(|(k, v)| (k.clone(), *v)));
                (s.clone(), m)
            })
            .collect();
        Ok(Policy { cfg: self, slo_by_service })
    }
}

/// The decision, as the proto names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    Promote,
    Continue,
    Hold,
    Rollback,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Promote => "PROMOTE",
            Decision::Continue => "CONTINUE",
            Decision::Hold => "HOLD",
            Decision::Rollback => "ROLLBACK",
        }
    }
}

/// What the policy weighs, for one answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// Calibrated failure probability.
    pub probability: f64,
    /// max(p, 1 − p).
    pub confidence: f64,
    /// The judge's metrics that failed the canary on their own (critical).
    pub critical_failures: Vec<String>,
    /// The judge's classification: `Fail` rolls back, `Marginal` holds.
    pub judge: Classification,
    pub judge_score: f64,
    /// Whether half or more of the judged metrics had no data.
    pub mostly_nodata: bool,
    /// Predicted performance at 100 %: (metric, point, 95 % interval lower end if known).
    pub performance: Vec<(String, f64, Option<f64>)>,
    /// The sequence model's forecast SLO breaches within its horizon (against
    /// [`Policy::slo`] of the service).
    pub breaches: Vec<SloBreach>,
    /// The service (its SLOs may differ from the defaults).
    pub service: String,
    /// The canary's weight now.
    pub current_weight: f64,
}

/// Per-deployment memory of a stream; a unary call starts from a fresh one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamState {
    /// Whether the canary is in the healthy state of the hysteresis.
    pub healthy: bool,
    /// Consecutive healthy answers since the last step up.
    pub streak: u32,
    /// Consecutive `HOLD`s.
    pub holds: u32,
    /// Consecutive answers at or above the rollback probability.
    pub alarms: u32,
    /// The highest weight this stream has moved the canary to.
    pub weight: f64,
    /// Answers so far.
    pub answers: u64,
}

/// The policy's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub decision: Decision,
    pub next_weight: f64,
    /// The rules that decided, in words (first the deciding one).
    pub because: Vec<String>,
}

impl Policy {
    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    /// The SLOs of `service`: `[serve.policy.slo]` with the service's overrides applied.
    pub fn slo(&self, service: &str) -> &BTreeMap<String, f64> {
        self.slo_by_service.get(service).unwrap_or(&self.cfg.slo)
    }

    /// The first step above `w` (100 when none).
    fn next_step(&self, w: f64) -> f64 {
        self.cfg.steps.iter().copied().find(|s| *s > w + 1e-9).unwrap_or(100.0)
    }

    /// Decides, updating `state` (a stream's, or a fresh one for a unary call).
    pub fn decide(&self, e: &Evidence, state: &mut StreamState, stream: bool) -> Outcome {
        let c = &self.cfg;
        state.answers += 1;
        let weight = e.current_weight.max(state.weight);
        let out = |decision: Decision, next_weight: f64, because: Vec<String>| Outcome { decision, next_weight, because };
        // 1. Critical metrics fail the canary, as in Kayenta.
        if !e.critical_failures.is_empty() {
            return self.finish(state, out(Decision::Rollback, 0.0, vec![format!("critical metric failed: {}", e.critical_failures.join(", "))]));
        }
        // 2. The predictive rollback: a confident prediction of failure, `rollback_checks` times
        //    in a row on a stream.
        let alarm = e.probability >= c.rollback_probability && e.confidence >= c.min_confidence;
        state.alarms = if alarm { state.alarms + 1 } else { 0 };
        // At full traffic every user is exposed: one look is enough there.
        let alarms_needed = if stream && weight < 100.0 { c.rollback_checks } else { 1 };
        if alarm && state.alarms >= alarms_needed {
            return self.finish(
                state,
                out(Decision::Rollback, 0.0, vec![format!(
                    "failure probability {:.2} ≥ {:.2} with confidence {:.2}",
                    e.probability, c.rollback_probability, e.confidence
                )]),
            );
        }
        // 3. Performance at full traffic beyond an SLO, surely: roll back; probably: hold. The
        //    same for the canary's own forecast within the sequence model's horizon.
        let mut perf_hold = Vec::new();
        let slo = self.slo(&e.service);
        for (metric, point, lower95) in &e.performance {
            if let Some(bound) = slo.get(metric) {
                if lower95.is_some_and(|l| l > *bound) {
                    return self.finish(
                        state,
                        out(Decision::Rollback, 0.0, vec![format!(
                            "`{metric}` at 100 % traffic is predicted above its SLO {bound} even at the 95 % interval's lower end {:.4}",
                            lower95.unwrap_or(*point)
                        )]),
                    );
                }
                if *point > *bound {
                    perf_hold.push(format!("`{metric}` at 100 % traffic is predicted at {point:.4}, above its SLO {bound}"));
                }
            }
        }
        for b in &e.breaches {
            let said = format!(
                "`{}` is forecast above its SLO {} within {} steps with probability {:.2}",
                b.metric, b.limit, b.step, b.probability
            );
            if b.probability >= c.breach_rollback_probability {
                return self.finish(state, out(Decision::Rollback, 0.0, vec![format!("{said} ≥ {:.2}", c.breach_rollback_probability)]));
            }
            if b.probability >= c.breach_hold_probability {
                perf_hold.push(said);
            }
        }
        // 4. The judge sees a failure now.
        if e.judge == Classification::Fail && !e.mostly_nodata {
            return self.finish(state, out(Decision::Rollback, 0.0, vec![format!("the judge fails the canary (score {:.0})", e.judge_score)]));
        }
        // A predictive alarm not yet repeated enough: look again.
        if alarm {
            return self.hold(
                state,
                weight,
                format!(
                    "failure probability {:.2} ≥ {:.2}: {} of {alarms_needed} checks before rolling back",
                    e.probability, c.rollback_probability, state.alarms
                ),
            );
        }
        // 5. Missing data: hold (or roll back, if so configured) rather than abort blindly.
        if e.mostly_nodata {
            let reason = "half or more of the judged metrics have no data".to_string();
            return match c.nodata {
                NodataAction::Hold => self.hold(state, weight, reason),
                NodataAction::Rollback => self.finish(state, out(Decision::Rollback, 0.0, vec![reason])),
            };
        }
        // 6. Hysteresis on the probability.
        if state.healthy {
            if e.probability > c.hold_probability {
                state.healthy = false;
            }
        } else if e.probability <= c.advance_probability {
            state.healthy = true;
        }
        if e.confidence < c.min_confidence {
            return self.hold(state, weight, format!("confidence {:.2} < {:.2}", e.confidence, c.min_confidence));
        }
        if let Some(r) = perf_hold.into_iter().next() {
            return self.hold(state, weight, r);
        }
        if e.judge == Classification::Marginal {
            return self.hold(state, weight, format!("the judge's score {:.0} is marginal", e.judge_score));
        }
        if !state.healthy {
            return self.hold(
                state,
                weight,
                format!(
                    "failure probability {:.2} is not yet below {:.2} (it advanced at ≤ {:.2} and holds above {:.2})",
                    e.probability, c.advance_probability, c.advance_probability, c.hold_probability
                ),
            );
        }
        // 7. Healthy: step up once stable enough.
        state.streak += 1;
        let needed = if stream { c.stable_checks } else { 1 };
        if state.streak < needed {
            return self.hold(state, weight, format!("healthy {} of {needed} checks before the next step", state.streak));
        }
        let next = self.next_step(weight);
        state.streak = 0;
        state.holds = 0;
        state.weight = next;
        let why = format!("failure probability {:.2} ≤ {:.2} with confidence {:.2}, judge score {:.0}", e.probability, c.advance_probability, e.confidence, e.judge_score);
        if next >= 100.0 {
            out(Decision::Promote, 100.0, vec![why])
        } else {
            out(Decision::Continue, next, vec![why])
        }
    }

    fn hold(&self, state: &mut StreamState, weight: f64, reason: String) -> Outcome {
        state.holds += 1;
        if self.cfg.max_holds > 0 && state.holds >= self.cfg.max_holds {
            return self.finish(
                state,
                Outcome {
                    decision: Decision::Rollback,
                    next_weight: 0.0,
                    because: vec![format!("held {} times in a row (max_holds); last: {reason}", state.holds)],
                },
            );
        }
        state.weight = weight;
        Outcome { decision: Decision::Hold, next_weight: weight, because: vec![reason] }
    }

    fn finish(&self, state: &mut StreamState, o: Outcome) -> Outcome {
        if o.decision == Decision::Rollback {
            state.healthy = false;
            state.streak = 0;
            state.weight = 0.0;
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(p: f64) -> Evidence {
        Evidence {
            probability: p,
            confidence: p.max(1.0 - p),
            critical_failures: vec![],
            judge: Classification::Pass,
            judge_score: 100.0,
            mostly_nodata: false,
            performance: vec![],
            breaches: vec![],
            service: "shop".into(),
            current_weight: 5.0,
        }
    }

    #[test]
    fn defaults_are_valid_and_bad_configs_name_the_field() {
        PolicyConfig::default().check().unwrap();
        let e = PolicyConfig { steps: vec![10.0, 5.0, 100.0], ..Default::default() }.check().unwrap_err();
        assert!(e.to_string().contains("serve.policy.steps"), "{e}");
        let e = PolicyConfig { hold_probability: 0.9, ..Default::default() }.check().unwrap_err();
        assert!(e.to_string().contains("serve.policy.hold_probability"), "{e}");
        let e = PolicyConfig { steps: vec![5.0, 50.0], ..Default::default() }.check().unwrap_err();
        assert!(e.to_string().contains("last is 100"), "{e}");
    }

    #[test]
    fn a_healthy_stream_climbs_the_ladder_after_stable_checks_and_promotes() {
        let p = PolicyConfig::default().check().unwrap();
        let mut s = StreamState::default();
        let mut e = ev(0.05);
        let mut seen = vec![];
        for _ in 0..10 {
            let o = p.decide(&e, &mut s, true);
            seen.push((o.decision, o.next_weight));
            e.current_weight = o.next_weight;
            if o.decision == Decision::Promote {
                break;
            }
        }
        use Decision::*;
        assert_eq!(seen, [(Hold, 5.0), (Continue, 10.0), (Hold, 10.0), (Continue, 25.0), (Hold, 25.0), (Continue, 50.0), (Hold, 50.0), (Promote, 100.0)]);
    }

    #[test]
    fn rollback_checks_wait_for_a_repeated_alarm_on_streams_only() {
        let p = PolicyConfig { rollback_checks: 2, ..Default::default() }.check().unwrap();
        use Decision::*;
        // One noisy window holds; it is forgotten when the next one is calm.
        let mut s = StreamState::default();
        let seen: Vec<Decision> = [0.9, 0.1, 0.9, 0.95].iter().map(|&q| p.decide(&ev(q), &mut s, true).decision).collect();
        assert_eq!(seen, [Hold, Hold, Hold, Rollback]);
        assert!(p.decide(&ev(0.9), &mut StreamState::default(), true).because[0].contains("1 of 2 checks"));
        // A unary call is stateless: it rolls back at once.
        assert_eq!(p.decide(&ev(0.9), &mut StreamState::default(), false).decision, Rollback);
        // At full traffic every user is exposed: one alarm is enough.
        let mut e = ev(0.9);
        e.current_weight = 100.0;
        assert_eq!(p.decide(&e, &mut StreamState::default(), true).decision, Rollback);
        // The judge does not wait.
        let mut e = ev(0.9);
        e.judge = Classification::Fail;
        assert_eq!(p.decide(&e, &mut StreamState::default(), true).decision, Rollback);
        let e = PolicyConfig { rollback_checks: 0, ..Default::default() }.check().unwrap_err();
        assert!(e.to_string().contains("serve.policy.rollback_checks"), "{e}");
    }

    #[test]
    fn hysteresis_keeps_weights_from_flapping_on_noise() {
        let p = PolicyConfig { stable_checks: 1, ..Default::default() }.check().unwrap();
        let mut s = StreamState::default();
        // 0.3 advances a healthy canary (it stays healthy up to 0.35) but not one that left the
        // healthy state: it must come back to 0.2 first. The weight never goes down.
        let mut w = 5.0;
        let mut decisions = vec![];
        let mut weights = vec![];
        for prob in [0.1, 0.3, 0.25, 0.4, 0.3, 0.25, 0.15] {
            let mut e = ev(prob);
            e.current_weight = w;
            let o = p.decide(&e, &mut s, true);
            w = o.next_weight;
            decisions.push(o.decision);
            weights.push(w);
        }
        use Decision::*;
        assert_eq!(decisions, [Continue, Continue, Continue, Hold, Hold, Hold, Promote]);
        assert_eq!(weights, [10.0, 25.0, 50.0, 50.0, 50.0, 50.0, 100.0]);
    }

    #[test]
    fn predictive_rollback_nodata_hold_and_low_confidence() {
        let p = PolicyConfig::default().check().unwrap();
        let o = p.decide(&ev(0.9), &mut StreamState::default(), false);
        assert_eq!((o.decision, o.next_weight), (Decision::Rollback, 0.0));
        assert!(o.because[0].contains("failure probability 0.90"), "{:?}", o.because);
        let mut e = ev(0.05);
        e.mostly_nodata = true;
        e.judge = Classification::Fail;
        let o = p.decide(&e, &mut StreamState::default(), false);
        assert_eq!((o.decision, o.next_weight), (Decision::Hold, 5.0), "NODATA holds rather than aborts");
        let o = p.decide(&ev(0.5), &mut StreamState::default(), false);
        assert_eq!(o.decision, Decision::Hold);
        assert!(o.because[0].contains("confidence 0.50"), "{:?}", o.because);
        let mut e = ev(0.05);
        e.critical_failures = vec!["errors".into()];
        assert_eq!(p.decide(&e, &mut StreamState::default(), false).decision, Decision::Rollback);
        // Unary calls are stateless: healthy means the next step at once.
        let o = p.decide(&ev(0.05), &mut StreamState::default(), false);
        assert_eq!((o.decision, o.next_weight), (Decision::Continue, 10.0));
    }

    #[test]
    fn max_holds_and_slo_guard() {
        let p = PolicyConfig { max_holds: 3, ..Default::default() }.check().unwrap();
        let mut s = StreamState::default();
        let d: Vec<Decision> = (0..3).map(|_| p.decide(&ev(0.5), &mut s, true).decision).collect();
        assert_eq!(d, [Decision::Hold, Decision::Hold, Decision::Rollback]);
        let mut slo = BTreeMap::new();
        slo.insert("latency_p99".to_string(), 200.0);
        let p = PolicyConfig { slo, ..Default::default() }.check().unwrap();
        let mut e = ev(0.05);
        e.performance = vec![("latency_p99".into(), 230.0, Some(180.0))];
        assert_eq!(p.decide(&e, &mut StreamState::default(), false).decision, Decision::Hold);
        e.performance = vec![("latency_p99".into(), 260.0, Some(210.0))];
        assert_eq!(p.decide(&e, &mut StreamState::default(), false).decision, Decision::Rollback);
    }

    #[test]
    fn forecast_breaches_hold_or_roll_back_against_the_services_slo() {
        let mut slo = BTreeMap::new();
        slo.insert("memory_mb".to_string(), 600.0);
        slo.insert("latency_p99".to_string(), 200.0);
        let mut services = BTreeMap::new();
        services.insert("search".to_string(), ServicePolicy { slo: [("latency_p99".to_string(), 900.0)].into() });
        let p = PolicyConfig { slo, services, ..Default::default() }.check().unwrap();
        assert_eq!(p.slo("search")["latency_p99"], 900.0);
        assert_eq!(p.slo("search")["memory_mb"], 600.0, "the defaults the service does not override");
        assert_eq!(p.slo("shop")["latency_p99"], 200.0);
        let breach = |probability: f64| SloBreach { metric: "memory_mb".into(), limit: 600.0, probability, step: 4 };
        let mut e = ev(0.05);
        e.breaches = vec![breach(0.3)];
        assert_eq!(p.decide(&e, &mut StreamState::default(), false).decision, Decision::Continue);
        e.breaches = vec![breach(0.6)];
        let o = p.decide(&e, &mut StreamState::default(), false);
        assert_eq!(o.decision, Decision::Hold);
        assert!(o.because[0].contains("`memory_mb` is forecast above its SLO 600 within 4 steps with probability 0.60"), "{:?}", o.because);
        e.breaches = vec![breach(0.95)];
        let o = p.decide(&e, &mut StreamState::default(), false);
        assert_eq!((o.decision, o.next_weight), (Decision::Rollback, 0.0));
        // the performance rule reads the service's bound
        let mut e = ev(0.05);
        e.performance = vec![("latency_p99".into(), 260.0, Some(210.0))];
        assert_eq!(p.decide(&e, &mut StreamState::default(), false).decision, Decision::Rollback);
        e.service = "search".into();
        assert_eq!(p.decide(&e, &mut StreamState::default(), false).decision, Decision::Continue);
        // bad settings name the field
        let e = PolicyConfig { breach_hold_probability: 0.95, ..Default::default() }.check().unwrap_err();
        assert!(e.to_string().contains("serve.policy.breach_hold_probability"), "{e}");
        let mut services = BTreeMap::new();
        services.insert("search".to_string(), ServicePolicy { slo: [("latency_p99".to_string(), f64::NAN)].into() });
        let e = PolicyConfig { services, ..Default::default() }.check().unwrap_err();
        assert!(e.to_string().contains("serve.policy.services.search.slo.latency_p99"), "{e}");
    }
}
