//! One SMTP client transaction (MAIL, RCPT..., DATA, message) as a pure
//! state machine: it says which commands to send, takes the replies in
//! order and returns steps, and ends with a verdict per recipient. With
//! PIPELINING every command up to DATA goes in one write. The checks that
//! refuse a message before connecting (SIZE, SMTPUTF8) are here too.

use super::reply::{Capabilities, Reply};
use crate::envelope::{Body, MailParams, Ret};

/// What became of one recipient in this transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Sent(Reply),
    /// Try again later (4xx, or 552 at RCPT: RFC 5321 §4.5.3.1.10).
    Deferred(Reply),
    Bounced(Reply),
}

/// A recipient as the transaction needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rcpt {
    pub address: String,
    pub notify: Vec<String>,
    pub orcpt: Option<String>,
}

/// The message side of a transaction.
#[derive(Debug, Clone)]
pub struct Mail {
    pub sender: Option<String>,
    pub params: MailParams,
    pub size: u64,
    /// Some header or address is not ASCII.
    pub needs_smtputf8: bool,
}

/// Why a message cannot go to a server at all (a permanent failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: &'static str,
    pub text: String,
}

/// Refuse before MAIL what the server said it would not take.
pub fn refuse_early(caps: &Capabilities, mail: &Mail) -> Option<Refusal> {
    if let Some(limit) = caps.size.filter(|l| *l > 0 && mail.size > *l) {
        return Some(Refusal {
            status: "5.3.4",
            text: format!("message size {} exceeds the server's limit of {limit}", mail.size),
        });
    }
    if mail.needs_smtputf8 && !caps.smtputf8 {
        return Some(Refusal {
            status: "5.6.7",
            text: "the message needs SMTPUTF8, which the server does not offer".into(),
        });
    }
    None
}

fn mail_command(caps: &Capabilities, mail: &Mail) -> String {
    let mut cmd = format!("MAIL FROM:<{}>", mail.sender.as_deref().unwrap_or(""));
    if caps.size.is_some() {
        cmd.push_str(&format!(" SIZE={}", mail.size));
    }
    if caps.eightbitmime && mail.params.body == Some(Body::EightBitMime) {
        cmd.push_str(" BODY=8BITMIME");
    }
    if caps.smtputf8 && mail.needs_smtputf8 {
        cmd.push_str(" SMTPUTF8");
    }
    if caps.dsn {
        match mail.params.ret {
            Some(Ret::Full) => cmd.push_str(" RET=FULL"),
            Some(Ret::Hdrs) => cmd.push_str(" RET=HDRS"),
            None => {}
        }
        // ENVID and ORCPT are kept as the client sent them: already xtext.
        if let Some(envid) = &mail.params.envid {
            cmd.push_str(&format!(" ENVID={envid}"));
        }
    }
    cmd.push_str("\r\n");
    cmd
}

fn rcpt_command(caps: &Capabilities, rcpt: &Rcpt) -> String {
    let mut cmd = format!("RCPT TO:<{}>", rcpt.address);
    if caps.dsn {
        if !rcpt.notify.is_empty() {
            cmd.push_str(&format!(" NOTIFY={}", rcpt.notify.join(",")));
        }
        if let Some(orcpt) = &rcpt.orcpt {
            cmd.push_str(&format!(" ORCPT={orcpt}"));
        }
    }
    cmd.push_str("\r\n");
    cmd
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the reply to MAIL.
    Mail,
    /// Waiting for the reply to RCPT number n.
    Rcpt(usize),
    /// Waiting for the reply to DATA.
    Data,
    /// Message sent; waiting for the reply to the final dot.
    Dot,
    /// DATA got 354 with no recipient accepted: an empty message was ended.
    Abandoned,
    /// MAIL failed under PIPELINING: this many answers to the RCPTs and DATA
    /// sent with it are still to come and are read away.
    Drain(usize),
    Done,
}

/// What the shell does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write these bytes, then read the next reply.
    Send(String),
    /// Read the next reply (pipelined commands are still answered).
    Read,
    /// Write the message (dot-stuffed, ending in CRLF.CRLF), then read.
    SendMessage,
    /// Finished: a verdict for every recipient, in order.
    Done(Vec<Verdict>),
}

pub struct Transaction {
    caps: Capabilities,
    rcpts: Vec<Rcpt>,
    verdicts: Vec<Option<Verdict>>,
    state: State,
    /// With PIPELINING, everything through DATA was sent at once.
    pipelined: bool,
    /// The verdicts, once decided while replies are still drained.
    decided: Option<Vec<Verdict>>,
}

impl Transaction {
    /// Start a transaction; returns it and the first bytes to send.
    pub fn start(caps: &Capabilities, mail: &Mail, rcpts: Vec<Rcpt>) -> (Transaction, String) {
        let pipelined = caps.pipelining;
        let mut first = mail_command(caps, mail);
        if pipelined {
            for r in &rcpts {
                first.push_str(&rcpt_command(caps, r));
            }
            first.push_str("DATA\r\n");
        }
        let t = Transaction {
            caps: caps.clone(),
            verdicts: vec![None; rcpts.len()],
            rcpts,
            state: State::Mail,
            pipelined,
            decided: None,
        };
        (t, first)
    }

    /// The reply now awaited is the one to the message data (longer timeout).
    pub fn awaits_dot(&self) -> bool {
        self.state == State::Dot
    }

    fn accepted(&self) -> usize {
        self.verdicts.iter().filter(|v| v.is_none()).count()
    }

    /// Every recipient without a verdict gets `make(reply)`.
    fn finish_all(&mut self, reply: &Reply, make: fn(Reply) -> Verdict) -> Step {
        self.state = State::Done;
        let verdicts = self
            .verdicts
            .drain(..)
            .map(|v| v.unwrap_or_else(|| make(reply.clone())))
            .collect();
        Step::Done(verdicts)
    }

    fn by_class(reply: &Reply) -> fn(Reply) -> Verdict {
        match reply.class() {
            2 => Verdict::Sent,
            5 => Verdict::Bounced,
            _ => Verdict::Deferred,
        }
    }

    /// After the last RCPT reply: DATA if anyone was accepted.
    fn after_rcpts(&mut self, last: &Reply) -> Step {
        self.state = State::Data;
        if self.pipelined {
            Step::Read
        } else if self.accepted() == 0 {
            self.finish_all(last, Verdict::Deferred)
        } else {
            Step::Send("DATA\r\n".into())
        }
    }

    /// Feed the next reply.
    pub fn on_reply(&mut self, reply: Reply) -> Step {
        match self.state {
            State::Mail if reply.class() == 2 => {
                if self.rcpts.is_empty() {
                    return self.after_rcpts(&reply);
                }
                self.state = State::Rcpt(0);
                if self.pipelined {
                    Step::Read
                } else {
                    Step::Send(rcpt_command(&self.caps, &self.rcpts[0]))
                }
            }
            State::Mail => {
                // Pipelined RCPTs and DATA are still answered (with 503s): read them away.
                let verdict = Self::by_class(&reply);
                let step = self.finish_all(&reply, verdict);
                match step {
                    Step::Done(verdicts) if self.pipelined => {
                        self.decided = Some(verdicts);
                        self.state = State::Drain(self.rcpts.len() + 1);
                        Step::Read
                    }
                    step => step,
                }
            }
            State::Drain(left) => {
                // A server that answers DATA with 354 anyway gets an empty message.
                let (left, step) = if reply.code == 354 {
                    (left, Step::Send(".\r\n".into()))
                } else {
                    (left - 1, Step::Read)
                };
                if left == 0 {
                    self.state = State::Done;
                    return Step::Done(self.decided.take().unwrap_or_default());
                }
                self.state = State::Drain(left);
                step
            }
            State::Rcpt(n) => {
                if reply.class() != 2 {
                    let temporary = reply.class() == 4 || reply.code == 552;
                    self.verdicts[n] = Some(if temporary {
                        Verdict::Deferred(reply.clone())
                    } else {
                        Verdict::Bounced(reply.clone())
                    });
                }
                if n + 1 < self.rcpts.len() {
                    self.state = State::Rcpt(n + 1);
                    if self.pipelined {
                        Step::Read
                    } else {
                        Step::Send(rcpt_command(&self.caps, &self.rcpts[n + 1]))
                    }
                } else {
                    self.after_rcpts(&reply)
                }
            }
            State::Data if reply.code == 354 && self.accepted() > 0 => {
                self.state = State::Dot;
                Step::SendMessage
            }
            State::Data if reply.code == 354 => {
                self.state = State::Abandoned;
                Step::Send(".\r\n".into())
            }
            State::Data if self.accepted() == 0 => self.finish_all(&reply, Verdict::Deferred),
            State::Data | State::Dot => {
                let verdict = Self::by_class(&reply);
                self.finish_all(&reply, verdict)
            }
            State::Abandoned | State::Done => self.finish_all(&reply, Verdict::Deferred),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::reply::parse;

    fn r(s: &str) -> Reply {
        parse(format!("{s}\r\n").as_bytes()).unwrap().unwrap().0
    }

    fn mail() -> Mail {
        Mail {
            sender: Some("a@b.example".into()),
            params: MailParams::default(),
            size: 100,
            needs_smtputf8: false,
        }
    }

    fn rcpts(n: usize) -> Vec<Rcpt> {
        (0..n)
            .map(|i| Rcpt {
                address: format!("r{i}@c.example"),
                notify: vec!["FAILURE".into()],
                orcpt: Some(format!("rfc822;r{i}+2Bx@c.example")),
            })
            .collect()
    }

    fn caps(pipelining: bool, dsn: bool) -> Capabilities {
        Capabilities {
            pipelining,
            dsn,
            size: Some(1000),
            ..Default::default()
        }
    }

    #[test]
    fn plain_transaction_with_per_recipient_verdicts() {
        let (mut t, first) = Transaction::start(&caps(false, false), &mail(), rcpts(3));
        assert_eq!(first, "MAIL FROM:<a@b.example> SIZE=100\r\n");
        assert_eq!(t.on_reply(r("250 ok")), Step::Send("RCPT TO:<r0@c.example>\r\n".into()));
        assert!(matches!(t.on_reply(r("250 ok")), Step::Send(_)));
        assert!(matches!(t.on_reply(r("550 5.1.1 no such user")), Step::Send(_)));
        assert_eq!(t.on_reply(r("552 5.2.2 mailbox full")), Step::Send("DATA\r\n".into()));
        assert_eq!(t.on_reply(r("354 go")), Step::SendMessage);
        assert!(t.awaits_dot());
        let Step::Done(v) = t.on_reply(r("250 2.0.0 queued")) else {
            panic!()
        };
        assert_eq!(
            v,
            vec![
                Verdict::Sent(r("250 2.0.0 queued")),
                Verdict::Bounced(r("550 5.1.1 no such user")),
                Verdict::Deferred(r("552 5.2.2 mailbox full")),
            ]
        );
    }

    #[test]
    fn pipelined_with_dsn_parameters() {
        let mut m = mail();
        m.params.ret = Some(Ret::Hdrs);
        m.params.envid = Some("id+2B1".into());
        let (mut t, first) = Transaction::start(&caps(true, true), &m, rcpts(1));
        // The xtext of ENVID and ORCPT is passed on as it came, not encoded twice.
        assert_eq!(
            first,
            "MAIL FROM:<a@b.example> SIZE=100 RET=HDRS ENVID=id+2B1\r\n\
             RCPT TO:<r0@c.example> NOTIFY=FAILURE ORCPT=rfc822;r0+2Bx@c.example\r\nDATA\r\n"
        );
        assert_eq!(t.on_reply(r("250 ok")), Step::Read);
        assert_eq!(t.on_reply(r("250 ok")), Step::Read);
        assert_eq!(t.on_reply(r("354 go")), Step::SendMessage);
        let Step::Done(v) = t.on_reply(r("451 4.3.0 later")) else {
            panic!()
        };
        assert_eq!(v, vec![Verdict::Deferred(r("451 4.3.0 later"))]);
    }

    #[test]
    fn failed_mail_drains_pipelined_replies() {
        let (mut t, _) = Transaction::start(&caps(true, false), &mail(), rcpts(2));
        assert_eq!(t.on_reply(r("550 5.7.1 go away")), Step::Read);
        assert_eq!(t.on_reply(r("503 no")), Step::Read);
        assert_eq!(t.on_reply(r("503 no")), Step::Read);
        let Step::Done(v) = t.on_reply(r("503 no")) else {
            panic!()
        };
        assert_eq!(v, vec![Verdict::Bounced(r("550 5.7.1 go away")); 2]);
    }

    #[test]
    fn no_recipient_accepted_sends_no_message() {
        let (mut t, _) = Transaction::start(&caps(true, false), &mail(), rcpts(1));
        t.on_reply(r("250 ok"));
        t.on_reply(r("550 no"));
        // A broken server that still says 354 gets an empty message.
        assert_eq!(t.on_reply(r("354 go")), Step::Send(".\r\n".into()));
        let Step::Done(v) = t.on_reply(r("554 no valid recipients")) else {
            panic!()
        };
        assert_eq!(v, vec![Verdict::Bounced(r("550 no"))]);
        let (mut t, _) = Transaction::start(&caps(false, false), &mail(), rcpts(1));
        t.on_reply(r("250 ok"));
        let Step::Done(v) = t.on_reply(r("450 busy")) else {
            panic!()
        };
        assert_eq!(v, vec![Verdict::Deferred(r("450 busy"))]);
    }

    #[test]
    fn early_refusals() {
        let mut m = mail();
        m.size = 5000;
        assert_eq!(refuse_early(&caps(false, false), &m).unwrap().status, "5.3.4");
        m.size = 10;
        m.needs_smtputf8 = true;
        assert_eq!(refuse_early(&caps(false, false), &m).unwrap().status, "5.6.7");
    }
}
