//! The evaluation report: one self-contained HTML page (inline SVG drawn here, no script, no
//! external resource) with every figure of [`Evaluation`], which `metrics.json` holds beside it.

use std::fmt::Write;

use crate::evaluate::{Evaluation, ModeFigures};

const COLORS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
const JUDGE: &str = "#7f7f7f";

/// The sections of the page, by id, in order (the tests check each is there).
pub const SECTIONS: [&str; 9] =
    ["summary", "roc", "pr", "calibration", "lead-time", "false-rollbacks", "recall-by-mode", "importance", "profiles"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{:.1} %", x * 100.0))
}

fn num(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{x:.3}"))
}

fn mins(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{x:.0} min"))
}

/// A line chart on [0, x_max] × [0, y_max]; `diagonal` draws y = x dashed.
fn line_chart(x_label: &str, y_label: &str, series: &[(String, &str, Vec<[f64; 2]>)], x_max: f64, y_max: f64, diagonal: bool, markers: bool) -> String {
    // The legend goes under the axis title, one line per series, so it never hides a curve
    // (ROC and calibration curves run through the top right, PR curves through the top left).
    let shown = series.iter().filter(|x| !x.2.is_empty()).count() as f64;
    let (w, l, r, t, b) = (460.0, 52.0, 16.0, 14.0, 44.0);
    let ph = 282.0;
    let h = t + ph + b + 16.0 * shown + 4.0;
    let pw = w - l - r;
    let sx = |x: f64| l + (x / x_max).clamp(0.0, 1.0) * pw;
    let sy = |y: f64| t + ph - (y / y_max).clamp(0.0, 1.0) * ph;
    let mut s = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#);
    for i in 0..=5 {
        let f = i as f64 / 5.0;
        let _ = write!(
            s,
            r##"<line x1="{x}" y1="{t}" x2="{x}" y2="{yb}" stroke="#eee"/><line x1="{l}" y1="{y}" x2="{xr}" y2="{y}" stroke="#eee"/><text x="{x}" y="{ty}" text-anchor="middle">{xv}</text><text x="{tx}" y="{y2}" text-anchor="end">{yv}</text>"##,
            x = sx(f * x_max),
            yb = t + ph,
            y = sy(f * y_max),
            xr = l + pw,
            ty = t + ph + 14.0,
            xv = trim(f * x_max),
            tx = l - 4.0,
            y2 = sy(f * y_max) + 4.0,
            yv = trim(f * y_max)
        );
    }
    let _ = write!(s, r##"<rect x="{l}" y="{t}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##);
    if diagonal {
        let _ = write!(s, r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#bbb" stroke-dasharray="4 3"/>"##, sx(0.0), sy(0.0), sx(x_max), sy(y_max));
    }
    for (i, (name, color, pts)) in series.iter().filter(|x| !x.2.is_empty()).enumerate() {
        let path: Vec<String> = pts.iter().map(|p| format!("{:.1},{:.1}", sx(p[0]), sy(p[1]))).collect();
        let _ = write!(s, r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#, path.join(" "));
        if markers {
            for p in pts {
                let _ = write!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#, sx(p[0]), sy(p[1]));
            }
        }
        let ly = t + ph + b + 12.0 + 16.0 * i as f64;
        let _ = write!(s, r#"<rect x="{l}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}">{}</text>"#, ly - 9.0, l + 14.0, ly, esc(name));
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text transform="translate(12,{}) rotate(-90)" text-anchor="middle">{}</text></svg>"#,
        l + pw / 2.0,
        t + ph + 32.0,
        esc(x_label),
        t + ph / 2.0,
        esc(y_label)
    );
    s
}

fn trim(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 { format!("{}", v.round()) } else { format!("{v:.1}") }
}

/// Horizontal grouped bars: one group per row, one bar per (value, color); `legend` names them;
/// `none` is written where a value is missing. Bars are scaled to `max`.
fn bar_chart(rows: &[(String, Vec<Option<f64>>)], legend: &[(String, &str)], max: f64, none: &str, fmt: &dyn Fn(f64) -> String) -> String {
    let groups = legend.len().max(1);
    let bar = 14.0;
    let gap = 10.0;
    // The label column fits the longest label (about 6.2 px a character at 11 px sans-serif),
    // so long feature names are not cut at the left edge.
    let longest = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0) as f64;
    let l = (longest * 6.2 + 14.0).clamp(120.0, 420.0);
    let pw = 460.0;
    let w = (l + pw + 80.0).max(l + 170.0 * legend.len() as f64);
    let h = 30.0 + rows.len() as f64 * (bar * groups as f64 + gap) + 10.0;
    let mut s = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#);
    for (i, (name, color)) in legend.iter().enumerate() {
        let x = l + i as f64 * 170.0;
        let _ = write!(s, r#"<rect x="{x}" y="4" width="10" height="10" fill="{color}"/><text x="{}" y="13">{}</text>"#, x + 14.0, esc(name));
    }
    let max = if max > 0.0 { max } else { 1.0 };
    let mut y = 26.0;
    for (label, values) in rows {
        let gh = bar * groups as f64;
        let _ = write!(s, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, l - 6.0, y + gh / 2.0 + 4.0, esc(label));
        for (k, v) in values.iter().enumerate() {
            let color = legend.get(k).map_or(JUDGE, |c| c.1);
            let by = y + k as f64 * bar;
            match v {
                Some(v) => {
                    let bw = (v.max(0.0) / max).min(1.0) * pw;
                    let _ = write!(s, r#"<rect x="{l}" y="{by}" width="{bw:.1}" height="{}" fill="{color}"/><text x="{}" y="{}">{}</text>"#, bar - 2.0, l + bw + 4.0, by + bar - 4.0, esc(&fmt(*v)));
                }
                None => {
                    let _ = write!(s, r##"<text x="{}" y="{}" fill="#999">{}</text>"##, l + 4.0, by + bar - 4.0, esc(none));
                }
            }
        }
        y += gh + gap;
    }
    s.push_str("</svg>");
    s
}

/// A histogram of `values` (minutes) in 10-minute buckets, one series per (name, color).
fn histogram(series: &[(String, &str, Vec<f64>)]) -> String {
    let all: Vec<f64> = series.iter().flat_map(|s| s.2.iter().copied()).collect();
    if all.is_empty() {
        return "<p>No failing deployment was detected by either side.</p>".into();
    }
    let lo = (all.iter().copied().fold(f64::INFINITY, f64::min) / 10.0).floor() * 10.0;
    let hi = (all.iter().copied().fold(f64::NEG_INFINITY, f64::max) / 10.0).floor() * 10.0;
    let buckets: Vec<f64> = std::iter::successors(Some(lo), |b| (*b + 10.0 <= hi).then_some(*b + 10.0)).collect();
    let rows: Vec<(String, Vec<Option<f64>>)> = buckets
        .iter()
        .map(|b| {
            let counts = series.iter().map(|s| Some(s.2.iter().filter(|v| **v >= *b && **v < b + 10.0).count() as f64)).collect();
            (format!("lead {b:+.0} to {:+.0} min", b + 10.0), counts)
        })
        .collect();
    let max = rows.iter().flat_map(|r| r.1.iter().flatten().copied()).fold(0.0, f64::max);
    let legend: Vec<(String, &str)> = series.iter().map(|s| (s.0.clone(), s.1)).collect();
    bar_chart(&rows, &legend, max, "n/a", &|v| format!("{v:.0}"))
}

fn mode_rows(m: &[ModeFigures], judge: &[ModeFigures]) -> String {
    let mut s = String::from("<table><tr><th>failure mode</th><th>deployments</th><th>omen recall</th><th>judge recall</th><th>omen median detection</th><th>judge median detection</th><th>median lead</th><th>omen earlier / judge earlier / same</th></tr>");
    for f in m {
        let j = judge.iter().find(|j| j.mode == f.mode);
        let _ = write!(
            s,
            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {} / {}</td></tr>",
            esc(&f.mode),
            if f.slow { " <small>(slow)</small>" } else { "" },
            f.deployments,
            pct(f.omen_recall),
            pct(j.and_then(|j| j.judge_recall).or(f.judge_recall)),
            mins(f.omen_detection_minutes_median),
            mins(f.judge_detection_minutes_median),
            mins(f.lead.median_minutes),
            f.lead.omen_earlier,
            f.lead.judge_earlier,
            f.lead.same
        );
    }
    s.push_str("</table>");
    s
}

/// The page.
pub fn html(e: &Evaluation) -> String {
    let h = &e.holdout;
    let mut s = String::from(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>omen evaluation</title><style>
body{font-family:sans-serif;margin:24px auto;max-width:1000px;color:#222;line-height:1.4}
h1{font-size:22px}h2{font-size:17px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td:first-child{white-space:nowrap}td:first-child,th:first-child{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:16px}
small,.note{color:#666;font-size:12px}
</style></head><body><h1>omen evaluation</h1>"#,
    );
    let _ = write!(
        s,
        r#"<p class="note">store {} · registry {} · hold-out: the last {:.0} % of {} deployments by start ({} to {}), {} evaluated ({} failing, {} healthy, {} rows), {} left out because a model was fitted on their rows. Decisions: <code>[serve.policy]</code> rollback at p ≥ {}, confidence ≥ {}, replayed per checkpoint as omen-serve's stream{}; reference judge <code>{}</code> on {}.</p>"#,
        esc(&e.store),
        esc(&e.registry),
        h.fraction * 100.0,
        h.deployments_total,
        esc(h.started_from.as_deref().unwrap_or("–")),
        esc(h.started_to.as_deref().unwrap_or("–")),
        h.deployments,
        h.failing,
        h.healthy,
        h.rows,
        h.deployments_seen_in_training,
        e.policy.rollback_probability,
        e.policy.min_confidence,
        [e.sequence.as_ref().map(|q| format!(", with the forecast SLO breaches of <code>{}</code>", esc(q))), e.performance.as_ref().map(|q| format!(", with the predictions at 100 % traffic of <code>{}</code> against <code>[serve.policy.slo]</code>", esc(q)))]
            .into_iter()
            .flatten()
            .collect::<String>(),
        esc(&e.judge.name),
        esc(&e.judge.metrics.join(", "))
    );
    // Summary.
    s.push_str(r#"<h2 id="summary">Summary</h2><table><tr><th>decider</th><th>ROC-AUC</th><th>PR-AUC</th><th>Brier</th><th>ECE</th><th>recall of failing</th><th>false rollbacks</th><th>median detection</th><th>median lead over judge</th></tr>"#);
    for m in &e.models {
        let c = &m.classifier;
        let _ = write!(
            s,
            "<tr><td>{} v{} <small>({})</small></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} <small>({}/{})</small></td><td>{} <small>({}/{})</small></td><td>{}</td><td>{}</td></tr>",
            esc(&m.name),
            m.version,
            esc(&m.asked_as),
            num(c.auc),
            num(c.pr_auc),
            num(c.brier),
            num(c.ece),
            pct(m.decisions.recall),
            m.decisions.detected,
            m.decisions.failing,
            pct(m.decisions.false_rollback_rate),
            m.decisions.false_rollbacks,
            m.decisions.healthy,
            mins(m.decisions.detection_minutes_median),
            mins(m.lead.median_minutes)
        );
    }
    let j = &e.judge.decisions;
    let _ = write!(
        s,
        "<tr><td>reference judge ({})</td><td>–</td><td>–</td><td>–</td><td>–</td><td>{} <small>({}/{})</small></td><td>{} <small>({}/{})</small></td><td>{}</td><td>–</td></tr></table>",
        esc(&e.judge.name),
        pct(j.recall),
        j.detected,
        j.failing,
        pct(j.false_rollback_rate),
        j.false_rollbacks,
        j.healthy,
        mins(j.detection_minutes_median)
    );
    if let Some(c) = &e.sequence_challenger {
        let _ = write!(
            s,
            r#"<h2 id="sequence-challenger">Sequence challenger</h2><p class="note">The decisions of <code>{}</code> replayed on the same hold-out with the served sequence model and with the challenger <code>{}</code>: outcome <b>{}</b>.</p><table><tr><th>replayed with</th><th>recall of failing</th><th>false rollbacks</th><th>median detection</th><th>median lead over judge</th><th>median lead, slow modes</th></tr>"#,
            esc(&c.decider),
            esc(&c.challenger),
            esc(&c.outcome)
        );
        for r in [&c.with_served, &c.with_challenger] {
            let d = &r.decisions;
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{} <small>({}/{})</small></td><td>{} <small>({}/{})</small></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(r.sequence.as_deref().unwrap_or("no sequence model")),
                pct(d.recall),
                d.detected,
                d.failing,
                pct(d.false_rollback_rate),
                d.false_rollbacks,
                d.healthy,
                mins(d.detection_minutes_median),
                mins(r.lead.median_minutes),
                mins(r.slow_lead_minutes())
            );
        }
        s.push_str(r#"</table><ul class="note">"#);
        for why in &c.reasons {
            let _ = write!(s, "<li>{}</li>", esc(why));
        }
        s.push_str("</ul>");
    }
    let color = |i: usize| COLORS[i % COLORS.len()];
    let label = |m: &crate::evaluate::ModelFigures| format!("{} v{}", m.name, m.version);
    // ROC and PR.
    let roc: Vec<_> = e.models.iter().enumerate().map(|(i, m)| (format!("{} (AUC {})", label(m), num(m.classifier.auc)), color(i), m.roc.clone())).collect();
    // Tied scores (many rows at p ≈ 1) make the first point of the PR curve land at a large
    // recall; draw its precision back to recall 0, as the curve's step function has it.
    let pr: Vec<_> = e
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut pts = m.pr.clone();
            if let Some(&[r, p]) = pts.first() {
                if r > 0.0 {
                    pts.insert(0, [0.0, p]);
                }
            }
            (format!("{} (AP {})", label(m), num(m.classifier.pr_auc)), color(i), pts)
        })
        .collect();
    let _ = write!(
        s,
        r#"<div class="charts"><div><h2 id="roc">ROC curve</h2>{}</div><div><h2 id="pr">Precision–recall curve</h2>{}</div></div><p class="note">Over the held-out rows (deployment × checkpoint).</p>"#,
        line_chart("false-positive rate", "true-positive rate", &roc, 1.0, 1.0, true, false),
        line_chart("recall", "precision", &pr, 1.0, 1.0, false, false)
    );
    // Calibration.
    let cal: Vec<_> = e
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let pts: Vec<[f64; 2]> = m.calibration.iter().filter_map(|b| Some([b.mean_predicted?, b.observed?])).collect();
            (format!("{} (ECE {})", label(m), num(m.classifier.ece)), color(i), pts)
        })
        .collect();
    let _ = write!(s, r#"<h2 id="calibration">Calibration</h2>{}<table><tr><th>bin</th>"#, line_chart("mean predicted probability", "observed failure rate", &cal, 1.0, 1.0, true, true));
    for m in &e.models {
        let _ = write!(s, "<th>{} rows</th><th>predicted</th><th>observed</th>", esc(&label(m)));
    }
    s.push_str("</tr>");
    let bins = e.models.first().map_or(0, |m| m.calibration.len());
    for b in 0..bins {
        let first = &e.models[0].calibration[b];
        let _ = write!(s, "<tr><td>{:.1}–{:.1}</td>", first.lower, first.upper);
        for m in &e.models {
            let c = &m.calibration[b];
            let _ = write!(s, "<td>{}</td><td>{}</td><td>{}</td>", c.count, num(c.mean_predicted), num(c.observed));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    // Lead time.
    s.push_str(r#"<h2 id="lead-time">Detection lead time against the reference judge</h2><p class="note">Lead = the judge's first rollback minus omen's, in minutes from the canary start, over failing deployments either side detected; a side that never rolls back counts as detecting at the last checkpoint. Positive: omen earlier.</p>"#);
    for (i, m) in e.models.iter().enumerate() {
        let modes: Vec<(String, Vec<Option<f64>>)> = m
            .by_mode
            .iter()
            .map(|f| (format!("{}{}", f.mode, if f.slow { " (slow)" } else { "" }), vec![f.omen_detection_minutes_median, f.judge_detection_minutes_median, f.lead.median_minutes]))
            .collect();
        let max = modes.iter().flat_map(|r| r.1.iter().flatten().copied()).fold(0.0, f64::max);
        let _ = write!(
            s,
            "<h3>{}</h3><p>Median detection time and lead per failure mode</p>{}<p>Distribution of the lead (deployments per 10-minute bucket)</p>{}{}",
            esc(&label(m)),
            bar_chart(
                &modes,
                &[(format!("{} detection", label(m)), color(i)), ("judge detection".into(), JUDGE), ("median lead over judge".into(), "#17becf")],
                max,
                "not detected",
                &|v| format!("{v:.0} min")
            ),
            histogram(&[(format!("{}: lead over judge", label(m)), color(i), m.lead.minutes.clone())]),
            mode_rows(&m.by_mode, &e.judge.by_mode)
        );
    }
    // False rollbacks.
    s.push_str(r#"<h2 id="false-rollbacks">False-rollback rate</h2>"#);
    let mut rows: Vec<(String, Vec<Option<f64>>)> = vec![(
        "all healthy".into(),
        e.models.iter().map(|m| m.decisions.false_rollback_rate).chain([j.false_rollback_rate]).collect(),
    )];
    if let Some(first) = e.models.first() {
        for (k, b) in first.by_bait.iter().enumerate() {
            let mut v: Vec<Option<f64>> = e
                .models
                .iter()
                .map(|m| m.by_bait.get(k).map(|x| x.omen_false_rollbacks as f64 / x.deployments.max(1) as f64))
                .collect();
            v.push(Some(b.judge_false_rollbacks as f64 / b.deployments.max(1) as f64));
            rows.push((format!("bait: {} ({} deployments)", b.bait, b.deployments), v));
        }
    }
    let mut legend: Vec<(String, &str)> = e.models.iter().enumerate().map(|(i, m)| (label(m), color(i))).collect();
    legend.push(("reference judge".into(), JUDGE));
    // Rates of a few per cent would be slivers on a 0–100 % axis: scale to the largest shown.
    let top = rows.iter().flat_map(|r| r.1.iter().flatten().copied()).fold(0.0, f64::max);
    let scale = (top * 1.2).clamp(0.05, 1.0);
    let _ = write!(
        s,
        r#"<p class="note">Healthy deployments rolled back, overall and per false-alarm bait (bars scaled to {:.0} %).</p>{}"#,
        scale * 100.0,
        bar_chart(&rows, &legend, scale, "n/a", &|v| format!("{:.1} %", v * 100.0))
    );
    // Recall per mode.
    s.push_str(r#"<h2 id="recall-by-mode">Recall per failure mode</h2>"#);
    let mut rows: Vec<(String, Vec<Option<f64>>)> = vec![(
        "all failing".into(),
        e.models.iter().map(|m| m.decisions.recall).chain([j.recall]).collect(),
    )];
    for f in &e.judge.by_mode {
        let mut v: Vec<Option<f64>> = e.models.iter().map(|m| m.by_mode.iter().find(|x| x.mode == f.mode).and_then(|x| x.omen_recall)).collect();
        v.push(f.judge_recall);
        rows.push((format!("{} ({} deployments)", f.mode, f.deployments), v));
    }
    s.push_str(&bar_chart(&rows, &legend, 1.0, "n/a", &|v| format!("{:.1} %", v * 100.0)));
    // Importance.
    s.push_str(r#"<h2 id="importance">Feature importance</h2><p class="note">Mean |TreeSHAP| over the held-out rows (log-odds), and the share of the split gain.</p>"#);
    for (i, m) in e.models.iter().enumerate() {
        let rows: Vec<(String, Vec<Option<f64>>)> = m.importance.iter().map(|f| (f.feature.clone(), vec![Some(f.mean_abs_shap)])).collect();
        let max = m.importance.iter().map(|f| f.mean_abs_shap).fold(0.0, f64::max);
        let _ = write!(s, "<h3>{}</h3>{}<table><tr><th>feature</th><th>mean |SHAP|</th><th>gain share</th></tr>", esc(&label(m)), bar_chart(&rows, &[("mean |SHAP|".into(), color(i))], max, "n/a", &|v| format!("{v:.3}")));
        for f in &m.importance {
            let _ = write!(s, "<tr><td>{}</td><td>{:.4}</td><td>{:.1} %</td></tr>", esc(&f.feature), f.mean_abs_shap, f.gain * 100.0);
        }
        s.push_str("</table>");
    }
    // Profiles.
    s.push_str(r#"<h2 id="profiles">Profile mix</h2><p class="note">Share of requests per behavioural profile (k-means over clients' request mixes), each named by its most frequent route.</p>"#);
    if e.profiles.is_empty() {
        s.push_str("<p>No profile set in the store (<code>omen profiles fit</code> makes one).</p>");
    }
    for p in &e.profiles {
        let rows: Vec<(String, Vec<Option<f64>>)> = p.profiles.iter().map(|x| (format!("{}: {}", x.id, x.top_route), vec![Some(x.share)])).collect();
        let _ = write!(
            s,
            "<h3>profile set {} {}</h3>{}",
            esc(&p.version),
            p.service.as_deref().map(|x| format!("({})", esc(x))).unwrap_or_else(|| "(all services)".into()),
            bar_chart(&rows, &[("share of requests".into(), COLORS[2])], 1.0, "n/a", &|v| format!("{:.1} %", v * 100.0))
        );
    }
    s.push_str("<p class=\"note\">Every figure of this page is in metrics.json beside it.</p></body></html>\n");
    s
}
