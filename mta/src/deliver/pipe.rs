//! Delivery to a program (`|command` in aliases or .forward): `/bin/sh -c`
//! with the message on stdin. Exit 0 is success, EX_TEMPFAIL (75) a
//! temporary failure, anything else permanent (sendmail's rules).

use super::{DeliveryError, Message};
use crate::account::Owner;
use std::process::Command;

pub const EX_TEMPFAIL: i32 = 75;

pub fn deliver(command: &str, msg: &Message<'_>, owner: Option<&Owner>) -> Result<(), DeliveryError> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .env("SENDER", msg.sender.unwrap_or(""))
        .env("RECIPIENT", msg.recipient);
    if let Some(o) = owner {
        super::run_as(&mut cmd, o);
        // sendmail runs programs in the user's home, or / if it is missing.
        cmd.current_dir(if o.home.is_dir() {
            o.home.as_path()
        } else {
            std::path::Path::new("/")
        });
    }
    super::run_with_input(&mut cmd, &msg.local_form(), command)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let msg = Message {
            sender: Some("s@x"),
            recipient: "r@y",
            content: b"a\r\n",
            arrived: 0,
        };
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        deliver(&format!("cat > {}", out.display()), &msg, None).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"Return-Path: <s@x>\na\n");
        assert!(deliver("exit 75", &msg, None).unwrap_err().temporary);
        assert!(!deliver("exit 1", &msg, None).unwrap_err().temporary);
    }

    #[test]
    fn runs_as_the_owner_with_only_its_group() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let o = crate::account::lookup("nobody").expect("nobody exists");
        let msg = Message {
            sender: None,
            recipient: "r@y",
            content: b"a\r\n",
            arrived: 0,
        };
        let check = format!(
            "test \"$(id -u)\" = {} && test \"$(id -G)\" = {} && test \"$USER\" = nobody",
            o.uid, o.gid
        );
        deliver(&check, &msg, Some(&o)).unwrap();
    }
}
