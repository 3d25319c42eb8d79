//! What the verdicts mean for the message (`[auth_checks]`): accept, file
//! into Junk, refuse with 550, or defer with 451. Pure: results in, action out.

use crate::config::{AuthChecksConfig, SpfFailAction, TempErrorAction};
use mail_auth::dmarc::Policy;
use mail_auth::{DmarcResult, SpfResult};

/// The verdicts the policy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    /// SPF of the MAIL FROM identity (postmaster@HELO for `<>`).
    pub spf: SpfResult,
    pub dmarc: Dmarc,
    /// The policy published for the From: domain (after `t=y` and `sp`/`np`).
    pub published: Policy,
}

/// The DMARC result, without mail-auth's error detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dmarc {
    Pass,
    Fail,
    TempError,
    PermError,
    None,
}

impl From<&DmarcResult> for Dmarc {
    fn from(r: &DmarcResult) -> Dmarc {
        match r {
            DmarcResult::Pass => Dmarc::Pass,
            DmarcResult::Fail(_) => Dmarc::Fail,
            DmarcResult::TempError(_) => Dmarc::TempError,
            DmarcResult::PermError(_) => Dmarc::PermError,
            DmarcResult::None => Dmarc::None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Accept,
    /// Accepted, delivered into the Junk folder.
    Junk,
    /// The SMTP reply that refuses the message (5xx) or defers it (4xx).
    Refuse(&'static str),
}

pub const DMARC_REJECT: &str = "550 5.7.1 Message rejected by the DMARC policy of the From: domain";
pub const SPF_REJECT: &str = "550 5.7.23 SPF validation failed";
pub const TEMPERROR: &str = "451 4.7.24 Temporary DNS failure verifying the sender; try again later";

pub fn decide(config: &AuthChecksConfig, e: &Evidence) -> Action {
    if e.dmarc == Dmarc::Pass {
        return Action::Accept;
    }
    // A temporary failure is decided before any 5xx: the verdict is unknown, not negative.
    let temporary = e.spf == SpfResult::TempError || e.dmarc == Dmarc::TempError;
    if temporary && config.temperror == TempErrorAction::Defer {
        return Action::Refuse(TEMPERROR);
    }
    if e.dmarc == Dmarc::Fail {
        match e.published {
            Policy::Reject if config.dmarc_reject => return Action::Refuse(DMARC_REJECT),
            Policy::Reject | Policy::Quarantine if config.dmarc_quarantine => return Action::Junk,
            _ => {}
        }
    }
    if e.spf == SpfResult::Fail && config.spf_fail == SpfFailAction::Reject {
        return Action::Refuse(SPF_REJECT);
    }
    Action::Accept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(spf: SpfResult, dmarc: Dmarc, published: Policy) -> Evidence {
        Evidence { spf, dmarc, published }
    }

    #[test]
    fn defaults() {
        let c = AuthChecksConfig::default();
        let d = |spf, dmarc, p| decide(&c, &evidence(spf, dmarc, p));
        assert_eq!(
            d(SpfResult::Fail, Dmarc::Fail, Policy::Reject),
            Action::Refuse(DMARC_REJECT)
        );
        assert_eq!(d(SpfResult::Fail, Dmarc::Fail, Policy::Quarantine), Action::Junk);
        assert_eq!(d(SpfResult::Fail, Dmarc::Fail, Policy::None), Action::Accept);
        assert_eq!(d(SpfResult::Fail, Dmarc::None, Policy::None), Action::Accept);
        assert_eq!(
            d(SpfResult::TempError, Dmarc::Fail, Policy::Reject),
            Action::Refuse(TEMPERROR)
        );
        assert_eq!(
            d(SpfResult::Pass, Dmarc::TempError, Policy::None),
            Action::Refuse(TEMPERROR)
        );
        assert_eq!(d(SpfResult::TempError, Dmarc::Pass, Policy::Reject), Action::Accept);
    }

    #[test]
    fn switches() {
        let c = AuthChecksConfig {
            dmarc_reject: false,
            spf_fail: SpfFailAction::Reject,
            temperror: TempErrorAction::Record,
            ..AuthChecksConfig::default()
        };
        let d = |spf, dmarc, p| decide(&c, &evidence(spf, dmarc, p));
        assert_eq!(d(SpfResult::Pass, Dmarc::Fail, Policy::Reject), Action::Junk);
        assert_eq!(
            d(SpfResult::Fail, Dmarc::None, Policy::None),
            Action::Refuse(SPF_REJECT)
        );
        assert_eq!(
            d(SpfResult::TempError, Dmarc::TempError, Policy::Reject),
            Action::Accept
        );
        let off = AuthChecksConfig {
            dmarc_quarantine: false,
            ..AuthChecksConfig::default()
        };
        assert_eq!(
            decide(&off, &evidence(SpfResult::Pass, Dmarc::Fail, Policy::Quarantine)),
            Action::Accept
        );
    }
}
