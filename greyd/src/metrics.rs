//! The Prometheus endpoint (`--metrics ADDR`) and greyd's metrics, one
//! function each so every place that counts something counts it the same way.
//! Without an endpoint the counters cost next to nothing (no recorder).

use std::net::SocketAddr;
use std::time::Duration;

use ::metrics::counter;
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder};

/// Serve `/metrics` on `addr` from the current tokio runtime.
pub fn install(addr: SocketAddr) -> Result<(), BuildError> {
    PrometheusBuilder::new().with_http_listener(addr).install()
}

/// A connection accepted, by class: `white`, `allowed`, `grey`, `black` or `trapped`.
pub fn connection(class: &'static str) {
    counter!("greyd_connections_total", "class" => class).increment(1);
}

/// A tuple seen at RCPT.
pub fn tuple() {
    counter!("greyd_tuples_total").increment(1);
}

/// Sources whitelisted, by reason (`retry`, `subnet`, `spf`, `dnswl`).
pub fn promotions(reason: &'static str, sources: usize) {
    counter!("greyd_promotions_total", "reason" => reason).increment(sources as u64);
}

/// A source trapped, by reason.
pub fn trap_hit(reason: &'static str) {
    counter!("greyd_trap_hits_total", "reason" => reason).increment(1);
}

/// The time and bytes a tarpit connection of `class` cost its sender.
pub fn tarpit_spent(class: &'static str, bytes: usize, time: Duration) {
    counter!("greyd_tarpit_bytes_total", "class" => class).increment(bytes as u64);
    counter!("greyd_tarpit_milliseconds_total", "class" => class)
        .increment(u64::try_from(time.as_millis()).unwrap_or(u64::MAX));
}

/// Sync packets: `sent` (one per packet and target), `received` (accepted),
/// `dropped` (bad HMAC, malformed, replayed).
pub fn sync_packet(direction: &'static str) {
    counter!("greyd_sync_packets_total", "direction" => direction).increment(1);
}
