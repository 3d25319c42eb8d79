//! Sieve at delivery: which scripts apply to a Maildir (the global before
//! and after scripts from `[delivery]`, the user's active one), running
//! them, and what their actions become: Maildir targets with folders and
//! flags, addresses to redirect to, or a refusal. Any failure means the
//! message is kept in INBOX, with the reason logged.

use super::{Message, Target};
use crate::config::DeliveryConfig;
use crate::sieve::{self, Action, Input, Script, scripts};
use std::path::{Path, PathBuf};

/// What the scripts decided for one Maildir recipient.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filtered {
    /// Empty when the scripts discarded the message.
    pub targets: Vec<Target>,
    pub redirects: Vec<String>,
    /// The `reject` reason.
    pub reject: Option<String>,
}

/// Run the scripts for a delivery into `dir` (INBOX being `folder`, the
/// `+detail` folder, when set); `None` when no script applies.
pub fn filter(config: &DeliveryConfig, dir: &Path, folder: Option<&str>, msg: &Message<'_>) -> Option<Filtered> {
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
    let outcome = sieve::run_all(
        &refs,
        &Input {
            content: msg.content,
            sender: msg.sender,
            recipient: msg.recipient,
            mailbox_exists: &exists,
        },
    );
    if let Some(e) = &outcome.error {
        tracing::warn!("to=<{}>: sieve: {e}; keeping the message", msg.recipient);
    }
    Some(plan(dir, folder, outcome.actions, msg.recipient))
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

fn plan(dir: &Path, inbox: Option<&str>, actions: Vec<Action>, recipient: &str) -> Filtered {
    let mut out = Filtered::default();
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
        }
    }
    out.targets.dedup();
    out
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
        assert_eq!(filter(&config, &md, None, &msg), None, "no script, no filtering");

        std::fs::write(
            scripts::path(&md, "main"),
            "require [\"fileinto\", \"mailbox\", \"imap4flags\", \"copy\"];\n\
             if header :contains \"subject\" \"[rust]\" { fileinto :create :flags \"\\\\Flagged\" \"Lists/Rust\"; }\n\
             redirect :copy \"me@elsewhere.example\";",
        )
        .unwrap();
        scripts::set_active(&md, Some("main")).unwrap();
        let got = filter(&config, &md, None, &msg).unwrap();
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
        let got = filter(&config, &md, None, &msg).unwrap();
        assert_eq!(got.targets, vec![maildir(Some("Junk"), false, &[], &md)]);
        assert!(got.redirects.is_empty());

        // A broken user script is skipped; a run-time failure keeps in the +detail folder's place.
        config.sieve_before = None;
        std::fs::write(scripts::path(&md, "main"), "fileinto \"x\";").unwrap();
        assert_eq!(
            filter(&config, &md, Some("tag"), &msg).unwrap().targets,
            vec![maildir(Some("tag"), false, &[], &md)]
        );
        config.sieve = false;
        assert_eq!(filter(&config, &md, None, &msg), None);
    }
}
