//! Sieve at delivery: which scripts apply to a Maildir (the global before
//! and after scripts from `[delivery]`, the user's active one), running
//! them, and what their actions become: Maildir targets with folders and
//! flags, addresses to redirect to, a vacation reply to queue, or a
//! refusal. Any failure means the message is kept in INBOX, with the
//! reason logged.

use super::sieve_memory::Memory;
use super::{Message, Target};
use crate::config::DeliveryConfig;
use crate::sieve::ast::Location;
use crate::sieve::{self, Action, Input, Script, scripts, vacation};
use std::path::{Path, PathBuf};

/// What the scripts decided for one Maildir recipient.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filtered {
    /// Empty when the scripts discarded the message.
    pub targets: Vec<Target>,
    pub redirects: Vec<String>,
    /// The `reject` reason.
    pub reject: Option<String>,
    /// A vacation reply due (the sender had none within `:days`).
    pub vacation: Option<VacationReply>,
    /// Ids `duplicate` saw, to remember once the message is delivered.
    pub seen_ids: Option<SeenIds>,
    /// The message editheader changed, for `targets` (CRLF lines).
    pub edited: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenIds {
    memory: Memory,
    ids: Vec<sieve::Tracked>,
}

impl SeenIds {
    /// Remember the ids: the next message with one of them is a duplicate.
    pub fn remember(&self) -> std::io::Result<()> {
        let now = crate::queue::now();
        for id in &self.ids {
            self.memory.remember(&id.key, now.saturating_add(id.seconds), now)?;
        }
        Ok(())
    }
}

/// An auto-reply to queue from `<>`, then to remember with [`VacationReply::sent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacationReply {
    pub to: String,
    pub content: Vec<u8>,
    memory: Memory,
    key: String,
    until: u64,
}

impl VacationReply {
    /// Remember that the reply went out, so the sender gets no other one
    /// for `:days`.
    pub fn sent(&self) -> std::io::Result<()> {
        self.memory.remember(&self.key, self.until, crate::queue::now())
    }
}

/// Run the scripts for a delivery into `dir` (INBOX being `folder`, the
/// `+detail` folder, when set); `None` when no script applies. Nothing is
/// written: a vacation reply is remembered only once it is queued.
pub fn filter(
    config: &DeliveryConfig,
    hostname: &str,
    dir: &Path,
    folder: Option<&str>,
    msg: &Message<'_>,
) -> Option<Filtered> {
    if !config.sieve {
        return None;
    }
    let files: Vec<PathBuf> = [
        config.sieve_before.clone(),
        scripts::active(dir),
        config.sieve_after.clone(),
    ]
    .into_iter()
    .flatten()
    .collect();
    if files.is_empty() {
        return None;
    }
    let compiled: Vec<Script> = files.iter().filter_map(|f| load(f)).collect();
    let refs: Vec<&Script> = compiled.iter().collect();
    let exists = |name: &str| {
        folder_of(name).is_some_and(|f| f.is_none_or(|f| dir.join(format!(".{f}")).join("maildirfolder").exists()))
    };
    let now = crate::queue::now();
    let duplicates = Memory::new(dir, "duplicate");
    let seen = |key: &str| duplicates.remembers(key, now);
    let outcome = sieve::run_all(
        &refs,
        &Input {
            content: msg.content,
            sender: msg.sender,
            recipient: msg.recipient,
            mailbox_exists: &exists,
            now: crate::datetime::now(),
            scores: &config.sieve_scores(),
            seen: &seen,
            include: &|location, name| include(config, dir, location, name),
        },
    );
    if let Some(e) = &outcome.error {
        tracing::warn!("to=<{}>: sieve: {e}; keeping the message", msg.recipient);
    }
    let (mut filtered, wanted) = plan(dir, folder, outcome.actions, msg.recipient);
    filtered.vacation = wanted.and_then(|v| vacation_reply(&v, dir, hostname, msg));
    filtered.edited = outcome.edited;
    filtered.seen_ids = (!outcome.tracked.is_empty()).then_some(SeenIds {
        memory: duplicates,
        ids: outcome.tracked,
    });
    Some(filtered)
}

/// The reply `v` asks for, unless RFC 3834 forbids one or the sender had
/// one within `:days` (logged either way).
fn vacation_reply(v: &sieve::ast::Vacation, dir: &Path, hostname: &str, msg: &Message<'_>) -> Option<VacationReply> {
    let headers = sieve::message::Headers::parse(msg.content);
    let to = match vacation::check(v, &headers, msg.sender, msg.recipient) {
        Ok(to) => to,
        Err(why) => {
            tracing::info!("to=<{}>: sieve: no vacation reply: {why}", msg.recipient);
            return None;
        }
    };
    let memory = Memory::new(dir, "vacation");
    let key = vacation::memory_key(v, to);
    let now = crate::queue::now();
    if memory.remembers(&key, now) {
        tracing::info!("to=<{}>: sieve: <{to}> already had a vacation reply", msg.recipient);
        return None;
    }
    Some(VacationReply {
        to: to.to_string(),
        content: vacation::reply(v, &headers, to, msg.recipient, now, hostname),
        memory,
        key,
        until: now.saturating_add(vacation::period(v)),
    })
}

/// The script `include` names: `:personal` from the user's sieve folder,
/// `:global` from `[delivery] sieve_global_dir`; `Ok(None)` when missing.
fn include(config: &DeliveryConfig, dir: &Path, location: Location, name: &str) -> Result<Option<Script>, String> {
    let file = match (location, &config.sieve_global_dir) {
        (Location::Personal, _) => scripts::path(dir, name),
        (Location::Global, Some(global)) => global.join(format!("{name}.sieve")),
        (Location::Global, None) => return Ok(None),
    };
    match std::fs::read(&file) {
        Ok(src) => sieve::parse(&src).map(Some).map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", file.display())),
    }
}

/// A script file compiled; one that cannot be read or compiled is skipped
/// with a warning, so the others still run.
fn load(file: &Path) -> Option<Script> {
    let src = std::fs::read(file)
        .map_err(|e| tracing::warn!("sieve: {}: {e}", file.display()))
        .ok()?;
    sieve::parse(&src)
        .map_err(|e| tracing::warn!("sieve: {}: {e}; script skipped", file.display()))
        .ok()
}

/// An IMAP mailbox name as a Maildir++ folder: `Some(None)` for INBOX,
/// `None` for a name the store would refuse.
fn folder_of(name: &str) -> Option<Option<String>> {
    let parts = crate::store::split_folder_name(name).ok()?;
    Some((parts != ["INBOX"]).then(|| parts.join(".")))
}

/// The actions as targets, redirects and a refusal, and the vacation the
/// script asked for.
fn plan(
    dir: &Path,
    inbox: Option<&str>,
    actions: Vec<Action>,
    recipient: &str,
) -> (Filtered, Option<sieve::ast::Vacation>) {
    let mut out = Filtered::default();
    let mut vacation = None;
    let target = |folder: Option<String>, create, flags| Target::Maildir {
        dir: dir.to_path_buf(),
        folder,
        create,
        flags,
    };
    for a in actions {
        match a {
            Action::Keep { flags } => out.targets.push(target(inbox.map(str::to_string), false, flags)),
            Action::FileInto { mailbox, create, flags } => match folder_of(&mailbox) {
                Some(folder) => out.targets.push(target(folder, create, flags)),
                None => {
                    tracing::warn!("to=<{recipient}>: sieve: bad mailbox name {mailbox:?}; keeping the message");
                    out.targets.push(target(inbox.map(str::to_string), false, flags));
                }
            },
            Action::Redirect { address } => out.redirects.push(address),
            Action::Reject { reason } => out.reject = Some(reason),
            Action::Vacation(v) => vacation = Some(v),
        }
    }
    out.targets.dedup();
    (out, vacation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(content: &[u8]) -> Message<'_> {
        Message {
            sender: Some("ann@lists.example"),
            recipient: "bob@example.org",
            content,
            arrived: 0,
        }
    }

    fn maildir(folder: Option<&str>, create: bool, flags: &[&str], dir: &Path) -> Target {
        Target::Maildir {
            dir: dir.to_path_buf(),
            folder: folder.map(str::to_string),
            create,
            flags: flags.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn active_and_global_scripts_decide_the_targets() {
        let tmp = tempfile::tempdir().unwrap();
        let md = tmp.path().join("Maildir");
        std::fs::create_dir_all(md.join(scripts::DIR)).unwrap();
        let mut config = DeliveryConfig::default();
        let msg = message(b"Subject: [rust] hi\r\nX-Spam: yes\r\n\r\nbody\r\n");
        assert_eq!(
            filter(&config, "mx.example.org", &md, None, &msg),
            None,
            "no script, no filtering"
        );

        std::fs::write(
            scripts::path(&md, "main"),
            "require [\"fileinto\", \"mailbox\", \"imap4flags\", \"copy\"];\n\
             if header :contains \"subject\" \"[rust]\" { fileinto :create :flags \"\\\\Flagged\" \"Lists/Rust\"; }\n\
             redirect :copy \"me@elsewhere.example\";",
        )
        .unwrap();
        scripts::set_active(&md, Some("main")).unwrap();
        let got = filter(&config, "mx.example.org", &md, None, &msg).unwrap();
        assert_eq!(
            got.targets,
            vec![maildir(Some("Lists.Rust"), true, &["\\Flagged"], &md)]
        );
        assert_eq!(got.redirects, vec!["me@elsewhere.example"]);

        // The global before script files spam and stops; the user's never runs.
        let before = tmp.path().join("before.sieve");
        std::fs::write(
            &before,
            "require \"fileinto\"; if header :is \"x-spam\" \"yes\" { fileinto \"Junk\"; stop; }",
        )
        .unwrap();
        config.sieve_before = Some(before);
        let got = filter(&config, "mx.example.org", &md, None, &msg).unwrap();
        assert_eq!(got.targets, vec![maildir(Some("Junk"), false, &[], &md)]);
        assert!(got.redirects.is_empty());

        // A broken user script is skipped; a run-time failure keeps in the +detail folder's place.
        config.sieve_before = None;
        std::fs::write(scripts::path(&md, "main"), "fileinto \"x\";").unwrap();
        assert_eq!(
            filter(&config, "mx.example.org", &md, Some("tag"), &msg)
                .unwrap()
                .targets,
            vec![maildir(Some("tag"), false, &[], &md)]
        );
        config.sieve = false;
        assert_eq!(filter(&config, "mx.example.org", &md, None, &msg), None);
    }

    #[test]
    fn vacation_is_due_until_remembered() {
        let tmp = tempfile::tempdir().unwrap();
        let md = tmp.path().join("Maildir");
        std::fs::create_dir_all(md.join(scripts::DIR)).unwrap();
        std::fs::write(
            scripts::path(&md, "away"),
            "require \"vacation\"; vacation :handle \"away\" \"Back soon.\";",
        )
        .unwrap();
        scripts::set_active(&md, Some("away")).unwrap();
        let config = DeliveryConfig::default();
        let msg = message(b"To: bob@example.org\r\nSubject: hi\r\n\r\nbody\r\n");
        let got = filter(&config, "mx.example.org", &md, None, &msg).unwrap();
        assert_eq!(
            got.targets,
            vec![maildir(None, false, &[], &md)],
            "vacation keeps the message"
        );
        let reply = got.vacation.expect("a reply is due");
        assert_eq!(reply.to, "ann@lists.example");
        assert!(String::from_utf8_lossy(&reply.content).contains("Subject: Auto: hi\r\n"));
        // Until it is sent the next message gets a reply too; then not.
        assert!(
            filter(&config, "mx.example.org", &md, None, &msg)
                .unwrap()
                .vacation
                .is_some()
        );
        reply.sent().unwrap();
        let again = filter(&config, "mx.example.org", &md, None, &msg).unwrap();
        assert_eq!(again.vacation, None);
        assert_eq!(again.targets, got.targets);
        // Mail that does not name the user gets none.
        let other = message(b"To: list@example.org\r\n\r\nbody\r\n");
        std::fs::remove_dir_all(md.join("sieve/.vacation")).unwrap();
        assert_eq!(
            filter(&config, "mx.example.org", &md, None, &other).unwrap().vacation,
            None
        );
    }
}
