//! Reports the daemon sends on its own schedule: every
//! `auth_checks.dmarc_report_interval`, the DMARC rows kept by
//! [`crate::inbound_auth::reports`] become one aggregate report per
//! domain, queued like any mail of ours (DKIM-signed, delivered by MX) to
//! the `rua` addresses that take it.

use crate::inbound_auth::reports::{Period, Reporter};
use crate::service::Shared;
use mail_auth::Txt;
use mail_auth::common::cache::NoCache;
use std::sync::Arc;

/// Run for the daemon's life; returns at once when reports are off.
pub async fn run(shared: Arc<Shared>) {
    if shared.inbound_auth.reports().is_none() {
        return;
    }
    let mut tick = tokio::time::interval(shared.config.auth_checks.dmarc_report_interval);
    // The first tick is immediate: the first period is a whole interval.
    tick.tick().await;
    loop {
        tick.tick().await;
        let taken = {
            let shared = Arc::clone(&shared);
            tokio::task::spawn_blocking(move || shared.inbound_auth.reports().map(|r| r.take())).await
        };
        match taken {
            Ok(Some(Ok(periods))) => {
                for period in periods {
                    send(&shared, &period).await;
                }
            }
            Ok(Some(Err(e))) => tracing::error!("DMARC reports: {e}"),
            Ok(None) | Err(_) => {}
        }
    }
}

/// Queue `period`'s report to each `rua` address that authorised it and
/// whose size limit (`!10m`) it fits.
async fn send(shared: &Arc<Shared>, period: &Period) {
    let host = &shared.config.hostname;
    let from = match shared.config.auth_checks.dmarc_report_from.as_str() {
        "" => format!("noreply-dmarc@{host}"),
        from => from.to_string(),
    };
    let domain = &period.domain;
    let destinations = period.destinations();
    let names: Vec<&str> = destinations.iter().map(|(a, _)| a.as_str()).collect();
    let authorised = shared
        .inbound_auth
        .authenticator()
        .verify_dmarc_report_address(domain, &names, None::<&NoCache<Box<str>, Txt>>)
        .await;
    let Some(authorised) = authorised else {
        // A DNS failure: the rows are gone, as a lost report is no harm; say so.
        tracing::warn!("DMARC report for {domain}: DNS failed checking its report addresses; not sent");
        return;
    };
    let now = crate::queue::now();
    let report_id = format!("{now}.{domain}@{host}");
    let reporter = Reporter {
        org_name: host,
        email: &from,
    };
    let report = period.report(&reporter, &report_id);
    let mut to = Vec::new();
    for (address, limit) in &destinations {
        if !authorised.iter().any(|a| **a == address.as_str()) {
            tracing::info!(
                "DMARC report for {domain}: <{address}> did not authorise reports for it (RFC 7489 §7.1); not sent there"
            );
            continue;
        }
        to.push((address.clone(), *limit));
    }
    if to.is_empty() {
        return;
    }
    let message = match report.to_rfc5322(
        host,
        ("DMARC aggregate report", from.as_str()),
        to.iter().map(|(a, _)| a.as_str()),
    ) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!("DMARC report for {domain}: {e}");
            return;
        }
    };
    let fits: Vec<String> = to
        .into_iter()
        .filter_map(|(address, limit)| {
            if limit != 0 && message.len() > limit {
                tracing::info!(
                    "DMARC report for {domain}: {} bytes is over the limit <{address}> asked for ({limit}); not sent there",
                    message.len()
                );
                return None;
            }
            Some(address)
        })
        .collect();
    if fits.is_empty() {
        return;
    }
    let shared = Arc::clone(shared);
    let rows = period.rows.len();
    let domain = domain.clone();
    let queued = tokio::task::spawn_blocking(move || {
        let queued = shared.originate(Some(from), &fits, "mta", message.as_bytes());
        (queued, fits)
    })
    .await;
    match queued {
        Ok((Ok(id), to)) => tracing::info!(
            "{id}: DMARC aggregate report for {domain} ({rows} messages) to {}",
            to.iter().map(|a| format!("<{a}>")).collect::<Vec<_>>().join(", ")
        ),
        Ok((Err(e), _)) => tracing::error!("DMARC report for {domain}: {e}"),
        Err(e) => tracing::error!("DMARC report for {domain}: {e}"),
    }
}
