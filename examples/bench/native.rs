//! The native baseline: the shipped health model and the shipped playbooks' conditions
//! written directly in Rust, over the same store. Benchmark code only — the product runs
//! the Rhai versions, and this is the yardstick for their overhead.
//!
//! It reads what a quiet Keel pass reads (each account decoded, its contacts) and decides
//! the same conditions, but records nothing: compare it with the *quiet* pass, which also
//! writes nothing.

use chrono::NaiveDate;
use keel::model::{Account, Segment};
use keel::store::Store;

fn pct(x: f64) -> f64 {
    x.clamp(0.0, 100.0)
}

fn mean(parts: &[f64]) -> Option<f64> {
    (!parts.is_empty()).then(|| parts.iter().sum::<f64>() / parts.len() as f64)
}

fn seg(a: &Account) -> &str {
    match &a.segment {
        Some(Segment::Enterprise) => "enterprise",
        Some(Segment::MidMarket) => "mid_market",
        Some(Segment::Smb) => "smb",
        Some(Segment::Other(s)) => s,
        None => "",
    }
}

/// rules/health.rhai, category by category.
fn health(a: &Account) -> (Option<f64>, Option<f64>) {
    let m = |k: &str| a.metrics.get(k).copied();
    let s = seg(a);
    let mut eng = Vec::with_capacity(4);
    if let (Some(act), Some(lic)) = (m("active_users"), m("licensed_users")) {
        if lic > 0.0 {
            eng.push(pct(act / lic / 0.95 * 100.0));
        }
    }
    if let (Some(l), Some(act)) = (m("logins_30d"), m("active_users")) {
        if act > 0.0 {
            eng.push(pct((l / act - 4.0) / 16.0 * 100.0));
        }
    }
    if let Some(x) = m("avg_session_minutes") {
        eng.push(pct((x - 2.0) / 38.0 * 100.0));
    }
    if let Some(t) = m("open_tickets") {
        let tol = match s {
            "enterprise" => 14.0,
            "mid_market" => 6.0,
            _ => 2.5,
        };
        eng.push(pct(100.0 - t / tol * 100.0));
    }
    let engagement = mean(&eng);
    let mut prod = Vec::with_capacity(4);
    if let Some(x) = m("feature_adoption_pct") {
        prod.push(pct(x));
    }
    if let Some(x) = m("workflow_completion_pct") {
        prod.push(pct(x));
    }
    if let Some(x) = m("data_quality_pct") {
        prod.push(pct((x - 50.0) * 2.0));
    }
    if let Some(x) = m("integrations") {
        let target = match s {
            "enterprise" => 10.0,
            "mid_market" => 6.0,
            _ => 3.0,
        };
        prod.push(pct(x / target * 100.0));
    }
    let mut rel = Vec::with_capacity(3);
    if let Some(x) = m("nps") {
        rel.push(pct(x * 10.0));
    }
    if s == "enterprise" || s == "mid_market" {
        let ent = s == "enterprise";
        if let Some(x) = m("exec_sponsor_meetings_90d") {
            rel.push(pct(x / if ent { 5.0 } else { 2.5 } * 100.0));
        }
        if let Some(x) = m("qbrs_attended_12m") {
            rel.push(pct(x / if ent { 3.5 } else { 1.8 } * 100.0));
        }
    }
    let mut bus = Vec::with_capacity(2);
    if let Some(x) = m("roi_achieved_pct") {
        bus.push(pct(x / 1.2));
    }
    if let Some(x) = m("expansion_potential_pct") {
        bus.push(pct(x));
    }
    let (mut total, mut weight) = (0.0, 0.0);
    for (score, w) in [(engagement, 40.0), (mean(&prod), 30.0), (mean(&rel), 20.0), (mean(&bus), 10.0)] {
        if let Some(s) = score {
            total += s * w;
            weight += w;
        }
    }
    ((weight > 0.0).then(|| total / weight), engagement)
}

/// Conditions of the 11 shipped playbooks due on the default schedule; returns how many
/// hold for this account (the would-fire count, before edges and the ledger).
fn conditions(a: &Account, today: NaiveDate) -> u32 {
    let (score, engagement) = health(a);
    let band = match score {
        Some(s) if s >= 80.0 => "green",
        Some(s) if s >= 60.0 => "yellow",
        Some(_) => "red",
        None => "",
    };
    let m = |k: &str| a.metrics.get(k).copied();
    let s = seg(a);
    let renews_in = a.renewal_date.map(|d| (d - today).num_days());
    let due = |offset: i64| renews_in.is_some_and(|n| n <= offset && n > offset - 7);
    let started = a.start_date.is_some_and(|d| d <= today && (today - d).num_days() < 7);
    let checks = [
        m("nps").is_some_and(|n| n >= 9.0) && m("roi_achieved_pct").is_some_and(|r| r >= 100.0),
        (band == "red" && renews_in.is_some_and(|n| n <= 90)) || m("nps").is_some_and(|n| n <= 6.0),
        s == "enterprise" && started,
        s != "smb"
            && band == "green"
            && matches!((m("active_users"), m("licensed_users")), (Some(a), Some(l)) if a >= 0.95 * l)
            && m("nps").is_some_and(|n| n >= 9.0),
        s != "smb" && engagement.is_some_and(|e| e < 50.0),
        band == "red",
        due(30),
        due(60),
        due(90),
        s == "smb" && started,
        s != "smb" && band == "yellow",
    ];
    checks.iter().filter(|c| **c).count() as u32
}

/// One pass: every account decoded (and its contacts read, as Keel's scope needs them),
/// the health model and the conditions decided. Returns (accounts, conditions that hold).
pub fn pass(store: &Store, today: NaiveDate, workers: usize) -> (u64, u64) {
    let ids: Vec<String> = store.accounts().map(|a| a.unwrap().id).collect();
    let chunk = ids.len().div_ceil(workers.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut holds = 0u64;
                    for id in part {
                        let a = store.account(id).unwrap().unwrap();
                        let contacts = store.contacts_of(id).unwrap();
                        std::hint::black_box(&contacts);
                        holds += conditions(&a, today) as u64;
                    }
                    (part.len() as u64, holds)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    })
}
