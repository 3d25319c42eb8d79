//! Bounce processing with Mailman's defaults: what a bounce scores (hard
//! 1, soft 0.5, content rejections 5.7.x nothing), the member's record
//! (score, disabled, warnings), and the steps a disabled member goes
//! through: disabled at a score of 5, warned 3 times an interval apart,
//! then removed. Also reading the status and recipient out of an RFC 3464
//! report. Pure: the report is network input, time is passed in.

use serde::{Deserialize, Serialize};

/// Score at which delivery to a member is disabled.
pub const DISABLE_AT: f64 = 5.0;
/// Warnings sent to a disabled member before removal.
pub const WARNINGS: u32 = 3;
/// A score older than this (no bounce since) starts again from zero.
pub const STALE_AFTER: u64 = 7 * 86400;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BounceRecord {
    pub score: f64,
    pub last_bounce: u64,
    /// When delivery was disabled, if it is.
    pub disabled_at: Option<u64>,
    pub warnings: u32,
    pub last_warning: u64,
}

/// What happens to the member after a bounce or a periodic check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Nothing,
    /// Delivery stops now; the first warning goes out.
    Disable,
    /// Another warning to the disabled member.
    Warn,
    /// The member is removed.
    Remove,
}

/// The score of a bounce with RFC 3463 status `status` (`5.1.1`).
pub fn score(status: &str) -> f64 {
    if status.starts_with("5.7.") {
        0.0
    } else if status.starts_with('5') {
        1.0
    } else if status.starts_with('4') {
        0.5
    } else {
        0.0
    }
}

impl BounceRecord {
    /// Count a bounce of `score` at `now`, then take the next step.
    pub fn bounced(&mut self, score: f64, now: u64, interval: u64) -> Step {
        if self.disabled_at.is_none() {
            if now.saturating_sub(self.last_bounce) > STALE_AFTER {
                self.score = 0.0;
            }
            self.score += score;
            if score > 0.0 {
                self.last_bounce = now;
            }
        }
        self.advance(now, interval)
    }

    /// The step due at `now`, recorded: disable once the score reaches
    /// the limit, then a warning every `interval`, then removal.
    pub fn advance(&mut self, now: u64, interval: u64) -> Step {
        match self.disabled_at {
            None if self.score >= DISABLE_AT => {
                self.disabled_at = Some(now);
                self.warnings = 1;
                self.last_warning = now;
                Step::Disable
            }
            None => Step::Nothing,
            Some(_) if now.saturating_sub(self.last_warning) < interval => Step::Nothing,
            Some(_) if self.warnings < WARNINGS => {
                self.warnings += 1;
                self.last_warning = now;
                Step::Warn
            }
            Some(_) => Step::Remove,
        }
    }
}

/// From a delivery report: the failed recipients (`Final-Recipient`) with
/// their `Status`, in the order given. Empty for anything that is no report.
pub fn report_statuses(content: &[u8]) -> Vec<(Option<String>, String)> {
    use mail_parser::MimeHeaders;
    let Some(msg) = mail_parser::MessageParser::new().parse(content) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for part in msg.parts.iter() {
        let is_status = part.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("message")
                && ct.subtype().is_some_and(|s| {
                    s.eq_ignore_ascii_case("delivery-status") || s.eq_ignore_ascii_case("global-delivery-status")
                })
        });
        if is_status {
            out.extend(status_fields(&String::from_utf8_lossy(part.contents())));
        }
    }
    out
}

/// The per-recipient groups of a delivery-status body.
fn status_fields(text: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    let mut recipient = None;
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("final-recipient") {
            recipient = value
                .split_once(';')
                .map(|(_, a)| a.trim().trim_matches(['<', '>']).to_ascii_lowercase());
        } else if name.eq_ignore_ascii_case("status") {
            let status: String = value.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            if status.split('.').count() == 3 {
                out.push((recipient.take(), status));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const WEEK: u64 = 7 * 86400;

    #[test]
    fn scores() {
        assert_eq!(score("5.1.1"), 1.0);
        assert_eq!(score("4.2.2"), 0.5);
        assert_eq!(score("5.7.1"), 0.0);
        assert_eq!(score("2.0.0"), 0.0);
    }

    #[test]
    fn five_hard_bounces_then_three_weekly_warnings_then_removal() {
        let mut r = BounceRecord::default();
        for i in 0..4 {
            assert_eq!(r.bounced(1.0, 100 + i, WEEK), Step::Nothing);
        }
        assert_eq!(r.bounced(0.0, 105, WEEK), Step::Nothing, "5.7.x counts nothing");
        assert_eq!(r.bounced(0.5, 106, WEEK), Step::Nothing);
        assert_eq!(r.bounced(0.5, 107, WEEK), Step::Disable);
        assert_eq!(r.advance(107 + WEEK - 1, WEEK), Step::Nothing);
        assert_eq!(r.advance(107 + WEEK, WEEK), Step::Warn);
        assert_eq!(r.advance(107 + 2 * WEEK, WEEK), Step::Warn);
        assert_eq!(r.warnings, 3);
        assert_eq!(r.advance(107 + 3 * WEEK - 1, WEEK), Step::Nothing);
        assert_eq!(r.advance(107 + 3 * WEEK, WEEK), Step::Remove);
    }

    #[test]
    fn an_old_score_starts_again() {
        let mut r = BounceRecord::default();
        for i in 0..4 {
            r.bounced(1.0, i, WEEK);
        }
        assert_eq!(r.bounced(1.0, 4 + STALE_AFTER + 1, WEEK), Step::Nothing);
        assert_eq!(r.score, 1.0);
    }

    #[test]
    fn statuses_of_a_report() {
        let report = "From: MAILER-DAEMON@x.test\r\nMIME-Version: 1.0\r\n\
            Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
            --b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n\
            --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x.test\r\n\r\n\
            Final-Recipient: rfc822; <Bob@Y.test>\r\nAction: failed\r\nStatus: 5.1.1 (no such user)\r\n\r\n\
            Final-Recipient: rfc822; carol@y.test\r\nAction: delayed\r\nStatus: 4.2.2\r\n\r\n--b--\r\n";
        assert_eq!(
            report_statuses(report.as_bytes()),
            vec![
                (Some("bob@y.test".into()), "5.1.1".into()),
                (Some("carol@y.test".into()), "4.2.2".into())
            ]
        );
        assert!(report_statuses(b"Subject: hi\r\n\r\nStatus: 5.1.1\r\n").is_empty());
    }

    proptest! {
        #[test]
        fn reports_never_panic(content in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = report_statuses(&content);
        }

        #[test]
        fn removal_only_after_disable_and_three_warnings(steps in proptest::collection::vec((0u8..3, 0u64..3 * WEEK), 0..40)) {
            let mut r = BounceRecord::default();
            let mut now = 0;
            let mut seen = Vec::new();
            for (kind, dt) in steps {
                now += dt;
                let step = match kind { 0 => r.bounced(1.0, now, WEEK), 1 => r.bounced(0.5, now, WEEK), _ => r.advance(now, WEEK) };
                if step == Step::Remove { break; }
                seen.push(step);
            }
            let warned = seen.iter().filter(|s| matches!(s, Step::Disable | Step::Warn)).count();
            prop_assert!(warned <= WARNINGS as usize);
            prop_assert!(seen.iter().filter(|s| **s == Step::Disable).count() <= 1);
        }
    }
}
