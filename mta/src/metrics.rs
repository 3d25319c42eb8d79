//! Keeping [`crate::stats`] current and visible: the Prometheus endpoint
//! (`[metrics] listen`), and a task that every minute sets the queue-size
//! gauge, adds greyd's grey → white funnel (polled from its control socket,
//! so one history ring holds both daemons' numbers) and saves the history
//! file `stats.json` in the queue directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, PrometheusBuilder};

use crate::service::Shared;

/// How often the gauge is set, greyd polled and the history saved.
const TICK: Duration = Duration::from_secs(60);

/// Serve `/metrics` on `addr` from the current tokio runtime.
pub fn install(addr: SocketAddr) -> Result<(), BuildError> {
    PrometheusBuilder::new().with_http_listener(addr).install()
}

/// The history file: the hourly ring, in the queue directory.
pub fn history_path(shared: &Shared) -> PathBuf {
    shared.config.queue.dir.join("stats.json")
}

/// Add what greyd did since its last poll (the status page polls it too).
pub async fn poll_greyd(shared: &Shared) {
    if let Some(socket) = &shared.config.outbound.greyd_control {
        match crate::greyd_control::stats(socket).await {
            Ok(g) => shared
                .stats
                .greyd_totals_at(g.started, g.numbers.since_start, crate::queue::now()),
            Err(e) => tracing::debug!("greyd's numbers: {e}"),
        }
    }
}

/// Set the queue gauge and save the history (blocking).
pub fn save(shared: &Shared) {
    shared.stats.queue_size(shared.queue.list().map_or(0, |ids| ids.len()));
    if let Err(e) = shared.stats.save(&history_path(shared)) {
        tracing::warn!("saving the status history: {e}");
    }
}

/// One minute's work: greyd's funnel, queue size, history saved.
async fn tick(shared: &Arc<Shared>) {
    poll_greyd(shared).await;
    let s = Arc::clone(shared);
    if tokio::task::spawn_blocking(move || save(&s)).await.is_err() {
        tracing::warn!("saving the status history: the task failed");
    }
}

/// Run [`tick`] now and every minute.
pub async fn run(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(TICK);
    loop {
        every.tick().await;
        tick(&shared).await;
    }
}
