//! What every front end shares: configuration, TLS, authentication,
//! routing, the queue, and the wake-up line to the queue runner. Also the
//! one place a message enters the queue (`accept_message`), so SMTP and
//! `sendmail` log and route alike.

use crate::auth::Authenticator;
use crate::config::Config;
use crate::deliver::{Message, Target};
use crate::envelope::{MailParams, RcptParams};
use crate::outbound::dkim::{DkimError, Signers};
use crate::queue::{Client, Envelope, Queue, QueueError, RcptStatus, Recipient};
use crate::recipient::{Resolved, Router, Verdict};
use crate::reload::Reloading;
use crate::tls::Tls;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// Messages to the queue runner.
#[derive(Debug)]
pub enum Wake {
    /// A new message was queued.
    New(String),
    /// ETRN: attempt everything now.
    All,
}

pub struct Shared {
    pub config: Arc<Config>,
    pub tls: Option<Arc<Tls>>,
    pub auth: Arc<Authenticator>,
    pub router: Arc<Router>,
    pub queue: Queue,
    /// The one DNS resolver of mta (`[dns]`).
    pub dns: Arc<crate::dns::Dns>,
    /// DKIM keys, re-read when `[dkim] key_dir` changes.
    pub dkim: Reloading<Signers, DkimError>,
    /// SPF/DKIM/DMARC/ARC/iprev of mail from other servers (`[auth_checks]`).
    pub inbound_auth: crate::inbound_auth::Verifier,
    /// `None` outside the daemon (`sendmail`): the runner finds new files by scanning.
    pub wake: Option<UnboundedSender<Wake>>,
    /// Hourly counts for the status page.
    pub stats: crate::stats::Stats,
}

/// A recipient accepted at RCPT time, with the routing verdict.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub address: String,
    pub params: RcptParams,
    pub relay: bool,
}

impl Shared {
    pub fn new(
        config: Config,
        tls: Option<Arc<Tls>>,
        wake: Option<UnboundedSender<Wake>>,
    ) -> Result<Shared, QueueError> {
        let config = Arc::new(config);
        let auth = Arc::new(Authenticator::new(&config.auth));
        let router = Arc::new(Router::new(Arc::clone(&config), Arc::clone(&auth)));
        let queue = Queue::open(&config.queue.dir)?;
        let dns = Arc::new(crate::dns::Dns::new(&config.dns));
        let dkim = Reloading::new(&config.dkim.key_dir, Signers::load);
        let inbound_auth = crate::inbound_auth::Verifier::new(&config, dns.authenticator());
        Ok(Shared {
            dkim,
            inbound_auth,
            config,
            tls,
            auth,
            router,
            queue,
            dns,
            wake,
            stats: Default::default(),
        })
    }

    /// Route a recipient for a client that may (or may not) relay.
    pub fn route(&self, local: &str, domain: &str, may_relay: bool) -> Verdict {
        self.router.check(local, domain, may_relay)
    }

    /// Mail was just delivered into `target`: IMAP sessions of this process
    /// watching that Maildir sync now, so IDLE reports it at once rather
    /// than at its next poll.
    pub fn delivered(&self, target: &Target) {
        if let Target::Maildir { dir, folder, .. } = target {
            crate::store::delivered(dir, folder.as_deref());
        }
    }

    /// `DKIM-Signature:` headers for a message we originate: from an
    /// authenticated client or a local sender (`sendmail`, the submission
    /// socket, our own bounces), whose From: or envelope domain has a key.
    /// Signing here, before the queue, means a retry never signs again. A
    /// key that fails is logged and the message goes unsigned.
    fn dkim_signatures(&self, sender: Option<&str>, client: &Client, body: &[u8]) -> String {
        if client.auth.is_none() && client.addr.is_some() {
            return String::new();
        }
        let signed = self.dkim.get().and_then(|signers| signers.sign(body, sender));
        signed.unwrap_or_else(|e| {
            tracing::error!("DKIM: {e}; sending unsigned");
            String::new()
        })
    }

    /// Queue a message durably (blocking: call from spawn_blocking), log it,
    /// and wake the runner. `received` builds the Received: header from the
    /// id. Our own mail is DKIM-signed first.
    pub fn accept_message(
        &self,
        sender: Option<String>,
        params: MailParams,
        recipients: &[Accepted],
        client: Client,
        received: impl FnOnce(&str) -> String,
        body: &[u8],
    ) -> Result<String, QueueError> {
        let envelope = Envelope {
            sender,
            params,
            recipients: recipients
                .iter()
                .map(|r| Recipient {
                    address: r.address.clone(),
                    params: r.params.clone(),
                    status: if r.relay {
                        RcptStatus::Relay
                    } else {
                        RcptStatus::Pending
                    },
                    done: Vec::new(),
                    forwarded: false,
                })
                .collect(),
            client,
            arrived: crate::queue::now(),
            attempts: 0,
            next_attempt: 0,
            last_error: None,
            delay_warned: false,
        };
        let signatures = self.dkim_signatures(envelope.sender.as_deref(), &envelope.client, body);
        let id = self.queue.store(&envelope, |id| received(id) + &signatures, body)?;
        tracing::info!(
            "{id}: accepted from=<{}> size={} nrcpt={} client={} helo={} auth={}",
            envelope.sender.as_deref().unwrap_or(""),
            body.len(),
            recipients.len(),
            envelope
                .client
                .addr
                .map(|a| a.to_string())
                .unwrap_or_else(|| "local".into()),
            envelope.client.helo.as_deref().unwrap_or("-"),
            // The AUTH identity is client-chosen bytes: escape it so it cannot forge log lines.
            envelope
                .client
                .auth
                .as_deref()
                .map_or_else(|| "-".into(), |a| a.escape_debug().to_string()),
        );
        if let Some(w) = &self.wake {
            let _ = w.send(Wake::New(id.clone()));
        }
        Ok(id)
    }

    /// For a message to exactly one local Maildir recipient: the reason its
    /// Sieve scripts reject it, so SMTP can answer 550 at once instead of a
    /// non-delivery report later (blocking: reads the scripts). `None` when
    /// they do not, or when the delivery decides (several recipients, an
    /// alias that expands, a remote one).
    pub fn sieve_rejects(&self, sender: Option<&str>, recipients: &[Accepted], content: &[u8]) -> Option<String> {
        let [rcpt] = recipients else { return None };
        if rcpt.relay {
            return None;
        }
        let expanded = self.router.expand(&rcpt.address);
        let [
            Resolved::Deliver {
                target: Target::Maildir { dir, folder, .. },
                ..
            },
        ] = expanded.as_slice()
        else {
            return None;
        };
        let msg = Message {
            sender,
            recipient: &rcpt.address,
            content,
            arrived: crate::queue::now(),
        };
        crate::deliver::sieve::filter(
            &self.config.delivery,
            &self.config.hostname,
            dir,
            folder.as_deref(),
            &msg,
        )?
        .reject
    }

    /// Queue a message mta writes itself (a delivery status notification,
    /// a report, list mail) for `to`, each address routed as a local
    /// sender's would be; signed like any local mail; `via` names the
    /// writer in its Received: line. An address the router refuses is left
    /// out and logged; only when none is left is that an error.
    pub fn originate(
        &self,
        sender: Option<String>,
        to: &[String],
        via: &str,
        bytes: &[u8],
    ) -> Result<String, OriginateError> {
        let host = &self.config.hostname;
        let mut recipients = Vec::new();
        let mut refused = Vec::new();
        for address in to {
            let (local, domain) = address.rsplit_once('@').unwrap_or((address, host));
            let relay = match self.route(local, domain, true) {
                Verdict::Local => false,
                Verdict::Relay => true,
                Verdict::Reject(reply) => {
                    refused.push((address.clone(), reply));
                    continue;
                }
            };
            recipients.push(Accepted {
                address: address.clone(),
                params: Default::default(),
                relay,
            });
        }
        if recipients.is_empty() {
            let (address, reply) = refused.into_iter().next().unwrap_or_default();
            return Err(OriginateError::Refused(address, reply));
        }
        for (address, reply) in refused {
            tracing::warn!("{via}: <{address}> left out: {reply}");
        }
        let client = Client {
            addr: None,
            helo: None,
            auth: None,
        };
        let params = MailParams {
            body: (!bytes.is_ascii()).then_some(crate::envelope::Body::EightBitMime),
            ..Default::default()
        };
        let received = |id: &str| {
            format!(
                "Received: by {host} ({via}) id {id};\r\n\t{}\r\n",
                crate::datetime::rfc5322(crate::queue::now())
            )
        };
        Ok(self.accept_message(sender, params, &recipients, client, received, bytes)?)
    }
}

/// Why a message of our own could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum OriginateError {
    #[error("<{0}> not possible: {1}")]
    Refused(String, String),
    #[error(transparent)]
    Queue(#[from] QueueError),
}
