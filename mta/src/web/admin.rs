//! The status page `/admin` for the users in `web.admins`: mta's queue
//! (size, oldest, deferred by destination), deliveries, bounces and
//! rejections per hour ([`crate::stats`]), and greyd's numbers from its
//! control socket (connections now, today's totals, the grey → white funnel
//! per hour, top trapped sources, lists, sync peers); charts as SVG,
//! refreshed every minute.

use super::{User, WebState, charts, layout};
use crate::greyd_control::{GreydStats, StatsError};
use crate::queue::{Queue, RcptStatus};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use std::collections::HashMap;
use std::sync::Arc;

/// What the queue holds now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct QueueFigures {
    pub messages: usize,
    /// Arrival of the oldest message, seconds since the epoch.
    pub oldest: Option<u64>,
    /// Recipients waiting for a retry, by destination domain, most first.
    pub deferred: Vec<(String, u64)>,
}

/// Read every envelope of the queue (blocking).
pub fn queue_figures(queue: &Queue) -> QueueFigures {
    let mut f = QueueFigures::default();
    let mut by_domain: HashMap<String, u64> = HashMap::new();
    for id in queue.list().unwrap_or_default() {
        let Ok(env) = queue.load(&id) else { continue };
        f.messages += 1;
        f.oldest = Some(f.oldest.map_or(env.arrived, |o| o.min(env.arrived)));
        for r in &env.recipients {
            let waiting = match &r.status {
                RcptStatus::RelayDeferred(_) => true,
                RcptStatus::Pending => env.attempts > 0,
                _ => false,
            };
            if waiting {
                let domain = r.address.rsplit_once('@').map_or("local", |d| d.1).to_ascii_lowercase();
                *by_domain.entry(domain).or_default() += 1;
            }
        }
    }
    f.deferred = by_domain.into_iter().collect();
    f.deferred.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    f.deferred.truncate(15);
    f
}

/// greyd's numbers, or why they could not be had; what greyd did since
/// the last poll goes into the funnel history on the way.
async fn greyd_stats(state: &WebState) -> Result<GreydStats, StatsError> {
    let Some(socket) = &state.shared.config.outbound.greyd_control else {
        return Err(StatsError::NotConfigured);
    };
    let stats = crate::greyd_control::stats(socket).await?;
    state
        .shared
        .stats
        .greyd_totals_at(stats.started, stats.numbers.since_start, crate::queue::now());
    Ok(stats)
}

/// How long ago `then` was, or a dash for never.
fn ago_or_never(now: u64, then: Option<i64>) -> String {
    match then.and_then(|t| u64::try_from(t).ok()) {
        Some(t) => format!("{} ago", ago(now.saturating_sub(t))),
        None => "never".into(),
    }
}

/// Connection classes in the order the page lists them, with their names there.
const CLASSES: [(&str, &str); 5] = [
    ("black", "tarpitted (black lists)"),
    ("trapped", "trapped"),
    ("grey", "greylisted"),
    ("white", "whitelisted"),
    ("allowed", "allowed"),
];

/// greyd's part of the page: its numbers now and today, top trapped sources, lists and sync peers.
fn greyd_section(g: &GreydStats, now: u64) -> Markup {
    let n = &g.numbers;
    let count = |m: &std::collections::BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    let trapped: Vec<(String, u64)> = n
        .top_trapped
        .iter()
        .map(|t| (t.ip.to_string(), t.connections))
        .collect();
    html! {
        table id="greyd-now" {
            thead { tr { th { "Connections" } th.num { "open now" } th.num { "today" } } }
            tbody {
                @for (class, name) in CLASSES {
                    tr data-class=(class) { td { (name) } td.num { (count(&n.open, class)) } td.num { (count(&n.today.connections, class)) } }
                }
            }
        }
        dl.headers id="greyd-today" {
            dt { "Tuples greylisted today" } dd id="greyd-greylisted" { (n.today.funnel.greylisted) }
            dt { "Promoted to white today" } dd id="greyd-promoted" { (n.today.funnel.promoted) }
            dt { "Passed to the MTA today" } dd id="greyd-passed" { (n.today.funnel.passed) }
            dt { "Trap hits today" } dd id="greyd-trap-hits" { (n.today.trap_hits) }
            dt { "Spammer time spent today" } dd id="greyd-tarpit-hours" { (format!("{:.2}", n.today.tarpit_seconds as f64 / 3600.0)) " h" }
        }
        (charts::ranking("Top trapped sources today (connections)", &trapped, "#a33"))
        h3 { "Lists" }
        table id="greyd-lists" {
            thead { tr { th { "List" } th { "Kind" } th.num { "Entries" } th { "Loaded" } } }
            tbody { @for l in &g.lists { tr { td { (l.name) } td { (l.kind) } td.num { (l.entries) } td { (ago_or_never(now, l.loaded)) } } } }
        }
        h3 { "Sync peers" }
        @if g.peers.is_empty() {
            p id="greyd-peers" { "No sync peers." }
        } @else {
            table id="greyd-peers" {
                thead { tr { th { "Peer" } th { "Last packet out" } th { "Last packet in" } } }
                tbody { @for p in &g.peers { tr { td { (p.addr) } td { (ago_or_never(now, p.last_out)) } td { (ago_or_never(now, p.last_in)) } } } }
            }
        }
    }
}

fn ago(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86400),
    }
}

pub async fn page(State(state): State<WebState>, user: User) -> Response {
    if !state.shared.config.web.admins.contains(&user.name) {
        return layout::error(
            StatusCode::FORBIDDEN,
            "The status page is for the administrators in web.admins.",
        );
    }
    let shared = Arc::clone(&state.shared);
    let queue = tokio::task::spawn_blocking(move || queue_figures(&shared.queue))
        .await
        .unwrap_or_default();
    let ends = (format!("-{}h", crate::stats::HOURS), "now".to_string());
    let ends = (ends.0.as_str(), ends.1.as_str());
    let greyd = greyd_stats(&state).await;
    let now = crate::queue::now();
    let hours = state.shared.stats.hours();
    let series = |f: fn(&crate::stats::Hour) -> u64| hours.iter().map(f).collect::<Vec<u64>>();
    let (greylisted, promoted, passed) = (
        series(|h| h.greyd.greylisted),
        series(|h| h.greyd.promoted),
        series(|h| h.greyd.passed),
    );
    let funnel = [
        charts::Series {
            name: "greylisted",
            values: &greylisted,
            color: "#c63",
        },
        charts::Series {
            name: "promoted",
            values: &promoted,
            color: "#396",
        },
        charts::Series {
            name: "passed",
            values: &passed,
            color: "#36c",
        },
    ];
    let body = html! {
        h1 { "Status" }
        p { "Refreshed every minute. Counts per hour over the last two days (kept across restarts)." }
        h2 { "Queue" }
        dl.headers {
            dt { "Messages" } dd id="queue-size" { (queue.messages) }
            dt { "Oldest" } dd { @match queue.oldest { Some(t) => { (ago(now.saturating_sub(t))) " old" }, None => "—" } }
        }
        (charts::ranking("Deferred recipients by destination", &queue.deferred, "#c63"))
        h2 { "Mail per hour" }
        (charts::bars("Deliveries per hour", &series(|h| h.delivered), "#36c", ends))
        (charts::bars("Rejected recipients per hour", &series(|h| h.rejected), "#a33", ends))
        (charts::bars("Deferred attempts per hour", &series(|h| h.deferred), "#c63", ends))
        (charts::bars("Bounces per hour", &series(|h| h.bounced), "#888", ends))
        h2 { "greyd" }
        (charts::lines("greyd: grey → white funnel per hour", &funnel, ends))
        @match &greyd {
            Ok(g) => (greyd_section(g, now)),
            Err(why) => p id="greyd-unavailable" { "greyd's numbers are not available: " (why) }
        }
    };
    let mut resp = layout::page("Status", Some(&user), body).into_response();
    resp.headers_mut()
        .insert("refresh", axum::http::HeaderValue::from_static("60"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_sensible_units() {
        assert_eq!(ago(30), "30 s");
        assert_eq!(ago(600), "10 min");
        assert_eq!(ago(3 * 3600), "3 h");
        assert_eq!(ago(3 * 86400), "3 days");
    }
}
