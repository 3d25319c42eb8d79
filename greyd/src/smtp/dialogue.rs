//! spamd's side of the SMTP dialogue: what to answer, when to report a
//! greylisting tuple, when to hang up. Stuttering is the caller's business;
//! [`Mode`] tells it which kind of connection this is.

use std::net::IpAddr;

use super::{Command, LineError};
use crate::db::StoredList;
use crate::grey::GreyTuple;

/// How this connection is treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Unknown source: greylisted, DATA refused with 451.
    Grey,
    /// Blacklisted or trapped source: stuttered throughout, and after DATA
    /// told `reply` (complete, with codes and CRLFs).
    Black { reply: String },
}

/// Settings of the dialogue.
#[derive(Debug, Clone)]
pub struct DialogueConfig {
    pub hostname: String,
    pub max_bad_commands: u32,
}

/// The result of one line of input.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Bytes to send (CRLF-terminated reply lines).
    pub reply: Option<String>,
    /// A complete tuple to greylist (at RCPT, greylisted connections only).
    pub tuple: Option<GreyTuple>,
    /// The client has started sending message data (the caller may shrink the window).
    pub data_started: bool,
    /// Hang up after sending `reply`.
    pub close: bool,
    /// The client sent before the banner had ended (postscreen's pregreet).
    pub pregreet: bool,
}

impl Step {
    fn reply(text: impl Into<String>) -> Step {
        Step {
            reply: Some(text.into()),
            ..Step::default()
        }
    }

    fn closing(text: impl Into<String>) -> Step {
        Step {
            reply: Some(text.into()),
            close: true,
            ..Step::default()
        }
    }
}

/// Body lines of blacklisted DATA read before the reply, as spamd does.
const DATA_BODY_LINES: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Commands,
    /// Reading a blacklisted client's message.
    Data {
        in_body: bool,
        body_lines: u32,
    },
    Closed,
}

/// One connection's dialogue state.
#[derive(Debug)]
pub struct Dialogue {
    ip: IpAddr,
    mode: Mode,
    config: DialogueConfig,
    phase: Phase,
    helo: String,
    mail: Option<String>,
    bad_commands: u32,
}

impl Dialogue {
    pub fn new(ip: IpAddr, mode: Mode, config: DialogueConfig) -> Dialogue {
        Dialogue {
            ip,
            mode,
            config,
            phase: Phase::Commands,
            helo: String::new(),
            mail: None,
            bad_commands: 0,
        }
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// The source was trapped during this connection: treat it as blacklisted from now on.
    pub fn trap(&mut self, reply: String) {
        self.mode = Mode::Black { reply };
    }

    /// The greeting, with the time (seconds since the epoch) as ctime(3) prints it, in UTC.
    pub fn banner(&self, name: &str, unix_time: i64) -> String {
        let time = greyd_shared::datetime::asctime(u64::try_from(unix_time).unwrap_or(0));
        format!("220 {} ESMTP {name}; {time}\r\n", self.config.hostname)
    }

    /// The banner has been sent; `input_waiting`: the client had already
    /// sent something before its last byte went out, which no client that
    /// waits for the greeting does.
    pub fn banner_ended(&mut self, input_waiting: bool) -> Step {
        Step {
            pregreet: input_waiting,
            ..Step::default()
        }
    }

    /// Answer one line (or line error) from the client.
    pub fn on_line(&mut self, line: Result<&[u8], LineError>) -> Step {
        match self.phase {
            Phase::Closed => Step {
                close: true,
                ..Step::default()
            },
            Phase::Data { in_body, body_lines } => self.on_data_line(line, in_body, body_lines),
            Phase::Commands => match line {
                Ok(l) => self.on_command(Command::parse(l)),
                Err(LineError::TooLong) => self.bad("500 5.5.2 Line too long\r\n"),
                Err(LineError::Nul) => self.bad("500 5.5.2 NUL byte in command\r\n"),
            },
        }
    }

    fn bad(&mut self, reply: &str) -> Step {
        self.bad_commands += 1;
        if self.bad_commands > self.config.max_bad_commands {
            self.phase = Phase::Closed;
            return Step::closing("421 4.7.0 Too many bad commands, closing connection\r\n");
        }
        Step::reply(reply)
    }

    fn on_command(&mut self, cmd: Command) -> Step {
        match cmd {
            Command::Quit => {
                self.phase = Phase::Closed;
                Step::closing(format!("221 {}\r\n", self.config.hostname))
            }
            Command::Helo(domain) if domain.is_empty() => Step::reply("501 helo requires domain name.\r\n"),
            Command::Helo(domain) => {
                self.helo = domain;
                self.mail = None;
                Step::reply("250 Hello, spam sender. Pleased to be wasting your time.\r\n")
            }
            Command::Mail(arg) => {
                self.mail = Some(arg);
                Step::reply("250 You are about to try to deliver spam. Your time will be spent, for nothing.\r\n")
            }
            Command::Rcpt(arg) => {
                let tuple = match (&self.mode, &self.mail) {
                    (Mode::Grey, Some(from)) => Some(GreyTuple {
                        ip: self.ip,
                        helo: self.helo.clone(),
                        from: from.clone(),
                        to: arg,
                    }),
                    _ => None,
                };
                Step {
                    tuple,
                    ..Step::reply("250 This is hurting you more than it is hurting me.\r\n")
                }
            }
            Command::Data => match &self.mode {
                Mode::Grey => {
                    self.phase = Phase::Closed;
                    Step::closing("451 Temporary failure, please try again later.\r\n")
                }
                Mode::Black { .. } => {
                    self.phase = Phase::Data {
                        in_body: false,
                        body_lines: 0,
                    };
                    Step {
                        data_started: true,
                        ..Step::reply("354 Enter spam, end with \".\" on a line by itself\r\n")
                    }
                }
            },
            Command::Rset => {
                self.mail = None;
                Step::reply("250 Ok to start over.\r\n")
            }
            Command::Noop => Step::reply("250 2.0.0 OK I did nothing\r\n"),
            Command::Unknown => self.bad("500 5.5.1 Command unrecognized\r\n"),
        }
    }

    fn on_data_line(&mut self, line: Result<&[u8], LineError>, in_body: bool, body_lines: u32) -> Step {
        // Bad lines inside a message are just more spam to count.
        let line = line.unwrap_or(b"x");
        let body_lines = if in_body { body_lines + 1 } else { 0 };
        if line == b"." || body_lines >= DATA_BODY_LINES {
            self.phase = Phase::Closed;
            let reply = match &self.mode {
                Mode::Black { reply } => reply.clone(),
                Mode::Grey => "451 Temporary failure, please try again later.\r\n".into(),
            };
            return Step::closing(reply);
        }
        self.phase = Phase::Data {
            in_body: in_body || line.is_empty(),
            body_lines,
        };
        Step::default()
    }
}

/// The reply a blacklisted source gets after DATA: every matching list's
/// message, `%A` replaced by the address, as a multi-line reply with `code`.
pub fn black_reply(lists: &[&StoredList], ip: IpAddr, code: u16) -> String {
    let mut lines: Vec<String> = Vec::new();
    for list in lists {
        let text = if list.message.trim().is_empty() {
            "Sorry %A\nYou are trying to send mail from an address listed by one\nor more IP-based registries as being a SPAM source."
        } else {
            list.message.as_str()
        };
        lines.extend(expand_message(text, ip));
    }
    format_reply(code, &lines)
}

/// One message (with spamd's escapes) as a reply with `code`.
pub fn message_reply(text: &str, ip: IpAddr, code: u16) -> String {
    format_reply(code, &expand_message(text, ip))
}

/// spamd's message escapes: `%A` is the address, `\n` (two characters or a
/// real newline) starts a new line, `\"` is a quote. Control characters are
/// dropped so a list cannot inject protocol lines.
pub(crate) fn expand_message(text: &str, ip: IpAddr) -> Vec<String> {
    let text = text
        .replace("\\n", "\n")
        .replace("\\\"", "\"")
        .replace("%A", &ip.to_string());
    text.lines()
        .map(|l| l.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// `lines` as one SMTP reply with `code` (continuation lines use `code-`).
pub(crate) fn format_reply(code: u16, lines: &[String]) -> String {
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        out.push_str(&format!("{code}{sep}{l}\r\n"));
    }
    if out.is_empty() {
        out = format!("{code} Blocked\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::ListKind;

    const IP: &str = "192.0.2.9";

    fn dialogue(mode: Mode) -> Dialogue {
        Dialogue::new(
            IP.parse().unwrap(),
            mode,
            DialogueConfig {
                hostname: "mx.test".into(),
                max_bad_commands: 3,
            },
        )
    }

    fn say(d: &mut Dialogue, line: &str) -> Step {
        d.on_line(Ok(line.as_bytes()))
    }

    fn list(message: &str) -> StoredList {
        StoredList {
            name: "l".into(),
            kind: ListKind::Black,
            message: message.into(),
            hard_block: false,
            entries: vec![],
        }
    }

    #[test]
    fn greylisted_dialogue_reports_tuples_and_refuses_data() {
        let mut d = dialogue(Mode::Grey);
        assert_eq!(
            d.banner("spamd", 1_795_826_587),
            "220 mx.test ESMTP spamd; Sat Nov 28 00:43:07 2026\r\n"
        );
        assert!(say(&mut d, "EHLO client.example").reply.unwrap().starts_with("250 "));
        assert_eq!(say(&mut d, "RCPT TO:<early@x>").tuple, None, "no tuple before MAIL");
        assert!(say(&mut d, "MAIL FROM:<Bob@Example.org>").tuple.is_none());
        let step = say(&mut d, "RCPT TO:<alice@example.com>");
        assert_eq!(
            step.tuple.unwrap(),
            GreyTuple {
                ip: IP.parse().unwrap(),
                helo: "client.example".into(),
                from: "<Bob@Example.org>".into(),
                to: "<alice@example.com>".into()
            }
        );
        assert!(say(&mut d, "RCPT TO:<carol@example.com>").tuple.is_some());
        let step = say(&mut d, "DATA");
        assert_eq!(
            step.reply.as_deref(),
            Some("451 Temporary failure, please try again later.\r\n")
        );
        assert!(step.close);
    }

    #[test]
    fn input_before_the_banner_ended_is_a_pregreet() {
        let mut d = dialogue(Mode::Grey);
        assert!(d.banner_ended(true).pregreet);
        assert_eq!(d.banner_ended(false), Step::default(), "waiting for the banner is fine");
    }

    #[test]
    fn null_sender_still_makes_a_tuple() {
        let mut d = dialogue(Mode::Grey);
        say(&mut d, "HELO h");
        say(&mut d, "MAIL FROM:<>");
        assert_eq!(say(&mut d, "RCPT TO:<a@b>").tuple.unwrap().from, "<>");
    }

    #[test]
    fn blacklisted_dialogue_takes_data_then_gives_list_message() {
        let reply = black_reply(
            &[&list("Your address %A is listed\\nGo away")],
            IP.parse().unwrap(),
            550,
        );
        assert_eq!(reply, "550-Your address 192.0.2.9 is listed\r\n550 Go away\r\n");
        let mut d = dialogue(Mode::Black { reply: reply.clone() });
        say(&mut d, "HELO h");
        say(&mut d, "MAIL FROM:<a@b>");
        assert_eq!(
            say(&mut d, "RCPT TO:<c@d>").tuple,
            None,
            "blacklisted tuples are not greylisted"
        );
        let step = say(&mut d, "DATA");
        assert!(step.data_started);
        assert!(step.reply.unwrap().starts_with("354 "));
        assert_eq!(say(&mut d, "Subject: spam"), Step::default());
        let end = say(&mut d, ".");
        assert_eq!(end.reply.as_deref(), Some(reply.as_str()));
        assert!(end.close);
    }

    #[test]
    fn blacklisted_data_ends_after_ten_body_lines() {
        let mut d = dialogue(Mode::Black {
            reply: "450 no\r\n".into(),
        });
        say(&mut d, "DATA");
        say(&mut d, "Subject: x");
        say(&mut d, "");
        for _ in 0..9 {
            assert_eq!(say(&mut d, "body"), Step::default());
        }
        assert!(say(&mut d, "body").close);
    }

    #[test]
    fn trapping_mid_session_switches_to_black() {
        let mut d = dialogue(Mode::Grey);
        say(&mut d, "HELO h");
        say(&mut d, "MAIL FROM:<a@b>");
        say(&mut d, "RCPT TO:<trap@x>");
        d.trap("450 trapped\r\n".into());
        assert!(say(&mut d, "DATA").reply.unwrap().starts_with("354"));
        assert_eq!(say(&mut d, ".").reply.as_deref(), Some("450 trapped\r\n"));
    }

    #[test]
    fn too_many_bad_commands_end_the_session() {
        let mut d = dialogue(Mode::Grey);
        for _ in 0..3 {
            assert_eq!(
                say(&mut d, "FOO").reply.as_deref(),
                Some("500 5.5.1 Command unrecognized\r\n")
            );
        }
        let last = d.on_line(Err(LineError::Nul));
        assert!(last.close);
        assert!(last.reply.unwrap().starts_with("421 "));
    }

    #[test]
    fn messages_cannot_inject_lines() {
        let reply = black_reply(&[&list("a\r\n250 ok\x07")], IP.parse().unwrap(), 450);
        assert_eq!(reply, "450-a\r\n450 250 ok\r\n");
        let generic = black_reply(&[&list("")], IP.parse().unwrap(), 450);
        assert!(generic.starts_with("450-Sorry 192.0.2.9\r\n"));
    }
}
