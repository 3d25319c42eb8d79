//! Verification of mail arriving on port 25 (`[auth_checks]`): SPF on HELO
//! and MAIL FROM, DKIM (every signature), DMARC, ARC and iprev, all by
//! mail-auth over our resolver (`[dns]`); the one `Authentication-Results:`
//! header recording them; and the policy's action. Authenticated
//! submissions and relay clients are not verified (the caller decides).

pub mod arc;
pub mod policy;
pub mod reports;
pub mod results;
pub mod spf;

use crate::config::{AuthChecksConfig, Config};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::report::{PolicyPublished, Record, SPFDomainScope};
use mail_auth::{AuthenticatedMessage, AuthenticationResults, MessageAuthenticator, ReceivedSpf};
use policy::{Action, Evidence};
use std::net::IpAddr;

/// What the SMTP session knows of the client.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub ip: IpAddr,
    pub helo: &'a str,
    /// MAIL FROM address; empty for `<>`.
    pub sender: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    /// `Authentication-Results:` (and `Received-SPF:` when configured),
    /// CRLF-terminated, to go in front of the message.
    pub headers: String,
}

pub struct Verifier {
    auth: MessageAuthenticator,
    config: AuthChecksConfig,
    authserv_id: String,
    hostname: String,
    sealer: Option<arc::Sealer>,
    reports: Option<reports::Reports>,
}

impl Verifier {
    pub fn new(config: &Config, auth: MessageAuthenticator) -> Verifier {
        let checks = &config.auth_checks;
        let authserv_id = if checks.authserv_id.is_empty() {
            config.hostname.clone()
        } else {
            checks.authserv_id.clone()
        };
        // A key that fails to load is logged and mail goes unsealed, as with DKIM.
        let sealer = checks.arc_key.as_deref().and_then(|path| {
            arc::Sealer::load(path)
                .map_err(|e| tracing::error!("ARC: {e}; not sealing"))
                .ok()
        });
        Verifier {
            auth,
            config: checks.clone(),
            authserv_id,
            hostname: config.hostname.clone(),
            sealer,
            reports: checks
                .dmarc_reports
                .then(|| reports::Reports::new(config.queue.dir.join("dmarc"))),
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    pub fn authserv_id(&self) -> &str {
        &self.authserv_id
    }

    /// The rows kept for DMARC reports, when they are on.
    pub fn reports(&self) -> Option<&reports::Reports> {
        self.reports.as_ref()
    }

    pub fn authenticator(&self) -> &MessageAuthenticator {
        &self.auth
    }

    /// The DMARC policy receivers apply to mail From: `domain`: its own
    /// record's `p=`, or its organisational domain's `sp=`/`np=`, found by
    /// the same RFC 9989 DNS tree walk as `verify` (mail-auth's; no public
    /// suffix list), `t=y` lowering it a step. `None` when DNS failed for now.
    pub async fn dmarc_policy(&self, domain: &str) -> Option<mail_auth::dmarc::Policy> {
        let headers = format!("From: <postmaster@{domain}>\r\n\r\n");
        let parsed = AuthenticatedMessage::parse(headers.as_bytes())?;
        let spf = mail_auth::SpfOutput::default();
        let dmarc = self
            .auth
            .verify_dmarc(DmarcParameters::new(&parsed, &[], "", &spf))
            .await;
        match dmarc.dkim_result() {
            mail_auth::DmarcResult::TempError(_) => None,
            _ => Some(dmarc.policy()),
        }
    }

    /// Run every check on `message` (as received, CRLF lines) and decide.
    pub async fn verify(&self, facts: &Facts<'_>, message: &[u8]) -> Verdict {
        // A message mail-auth cannot parse has no signatures to check; SPF and iprev still apply.
        let parsed = AuthenticatedMessage::parse(message).unwrap_or_default();
        let (spf, iprev, dkim, arc) = tokio::join!(
            spf::check(&self.auth, facts.ip, facts.helo, facts.sender, &self.hostname),
            self.auth.verify_iprev(facts.ip),
            self.auth.verify_dkim(&parsed),
            self.auth.verify_arc(&parsed),
        );
        let mail_from_domain = facts.sender.rsplit_once('@').map_or(facts.helo, |(_, d)| d);
        let dmarc = self
            .auth
            .verify_dmarc(DmarcParameters::new(&parsed, &dkim, mail_from_domain, &spf.mail_from))
            .await;
        let evidence = Evidence {
            spf: spf.mail_from.result(),
            dmarc: (&dmarc.result()).into(),
            published: dmarc.policy(),
        };
        let action = policy::decide(&self.config, &evidence);
        // DMARC goes last so the junk mark follows its result.
        let results = AuthenticationResults::new(&self.authserv_id)
            .with_iprev_result(&iprev, facts.ip)
            .with_spf_ehlo_result(&spf.helo, facts.ip, facts.helo)
            .with_spf_mailfrom_result(&spf.mail_from, facts.ip, facts.sender, facts.helo)
            .with_dkim_results(&dkim, parsed.from())
            .with_arc_result(&arc, facts.ip)
            .with_dmarc_result(&dmarc);
        let mut headers = format!("{}: {results}", results::NAME);
        if action == Action::Junk {
            headers.push(' ');
            headers.push_str(results::JUNK_MARK);
        }
        headers.push_str("\r\n");
        if let (Some(sealer), Action::Accept | Action::Junk) = (&self.sealer, action) {
            match sealer.seal(&parsed, &results, &arc) {
                Ok(Some(set)) => headers.push_str(&set),
                Ok(None) => {}
                Err(e) => tracing::warn!("ARC: {e}; not sealed"),
            }
        }
        if self.config.received_spf {
            let received = ReceivedSpf::new(&spf.mail_from, facts.ip, facts.helo, facts.sender, &self.hostname);
            headers.push_str(&received.to_header());
        }
        tracing::info!(
            "auth: client={} helo={} from=<{}> spf={} dmarc={:?} policy={:?} action={action:?}",
            facts.ip,
            facts.helo.escape_debug(),
            facts.sender.escape_debug(),
            spf.mail_from.result(),
            evidence.dmarc,
            evidence.published,
        );
        if let Some(reports) = &self.reports
            && let Some(record) = dmarc.dmarc_record()
            && !record.rua().is_empty()
            && let Some(disposition) = reports::disposition(action, evidence.dmarc == policy::Dmarc::Pass)
        {
            let row = reports::Row {
                at: crate::queue::now(),
                // mail-auth keeps only mailto: URIs, as addresses.
                rua: record
                    .rua()
                    .iter()
                    .map(|u| (u.uri().to_string(), u.max_size()))
                    .collect(),
                policy: PolicyPublished::from_record(dmarc.domain(), record),
                record: Record::new()
                    .with_source_ip(facts.ip)
                    .with_header_from(dmarc.domain())
                    .with_envelope_from(mail_from_domain)
                    .with_dkim_output(&dkim)
                    .with_spf_output(&spf.mail_from, SPFDomainScope::MailFrom)
                    .with_dmarc_output(&dmarc)
                    .with_action_disposition(disposition),
            };
            if let Err(e) = reports.record(dmarc.domain(), &row) {
                tracing::warn!("DMARC report row: {e}");
            }
        }
        Verdict { action, headers }
    }
}
