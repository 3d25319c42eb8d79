//! The status page `/admin` for the users in `web.admins`: mta's queue
//! (size, oldest, deferred by destination), deliveries, bounces and
//! rejections per hour ([`crate::stats`]), and greyd's lists from its
//! control socket; charts as SVG, refreshed every minute.

use super::{User, WebState, charts, layout};
use crate::queue::{Queue, RcptStatus};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
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

/// greyd's lists (name, kind, entries), or why they could not be had.
async fn greyd_lists(state: &WebState) -> Result<Vec<(String, String, u64)>, String> {
    let Some(socket) = &state.shared.config.outbound.greyd_control else {
        return Err("outbound.greyd_control is not set".into());
    };
    let answer = crate::greyd_control::request(socket, &serde_json::json!({"op": "list_lists"}))
        .await
        .map_err(|e| format!("{}: {e}", socket.display()))?;
    let v: serde_json::Value = serde_json::from_str(&answer).map_err(|e| format!("greyd's answer: {e}"))?;
    let lists = v["lists"]
        .as_array()
        .ok_or_else(|| format!("greyd answered {answer}"))?;
    Ok(lists
        .iter()
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap_or("").to_string();
            (s("name"), s("kind"), l["entries"].as_u64().unwrap_or(0))
        })
        .collect())
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
    let hours = state.shared.stats.hours();
    let series = |f: fn(&crate::stats::Hour) -> u64| hours.iter().map(f).collect::<Vec<u64>>();
    let ends = (format!("-{}h", hours.len()), "now".to_string());
    let ends = (ends.0.as_str(), ends.1.as_str());
    let greyd = greyd_lists(&state).await;
    let now = crate::queue::now();
    let body = html! {
        h1 { "Status" }
        p { "Refreshed every minute. Counts since mta started, per hour." }
        h2 { "Queue" }
        dl.headers {
            dt { "Messages" } dd id="queue-size" { (queue.messages) }
            dt { "Oldest" } dd { @match queue.oldest { Some(t) => { (ago(now.saturating_sub(t))) " old" }, None => "—" } }
        }
        (charts::ranking("Deferred recipients by destination", &queue.deferred, "#c63"))
        h2 { "Mail per hour" }
        (charts::bars("Deliveries per hour", &series(|h| h.delivered), "#36c", ends))
        (charts::bars("Rejected recipients per hour", &series(|h| h.rejected), "#a33", ends))
        (charts::bars("Bounces per hour", &series(|h| h.bounced), "#888", ends))
        h2 { "greyd" }
        @match &greyd {
            Ok(lists) => {
                table {
                    thead { tr { th { "List" } th { "Kind" } th.num { "Entries" } } }
                    tbody { @for (name, kind, n) in lists { tr { td { (name) } td { (kind) } td.num { (n) } } } }
                }
                (charts::ranking("greyd list sizes", &lists.iter().map(|l| (l.0.clone(), l.2)).collect::<Vec<_>>(), "#396"))
            }
            Err(why) => p { "greyd: " (why) }
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
