//! mta's command-line tools end to end: `mtactl init` and `user`,
//! `sendmail -t` / plain / `-bs`, `mailq`, `newaliases`.

use greyd_tests::mta::*;
use greyd_tests::users::SystemUser;

#[test]
fn init_writes_a_runnable_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        std::process::Command::new(greyd_tests::bin("mtactl"))
            .args(["init", "--root"])
            .arg(dir.path())
            .args([
                "--hostname",
                "h.test",
                "--domain",
                "d.test",
                "--listen",
                "127.0.0.1",
                "--port-offset",
                "40000",
            ]),
    );
    assert!(out.contains("mta.toml"), "{out}");
    let text = std::fs::read_to_string(dir.path().join("mta.toml")).unwrap();
    for port in [40025, 40587, 40465, 40143, 40993, 40110, 40995] {
        assert!(
            text.contains(&format!("\"127.0.0.1:{port}\"")),
            "{port} missing:\n{text}"
        );
    }
    for f in [
        "cert.pem",
        "key.pem",
        "users",
        "aliases",
        "virtusertable",
        "queue",
        "mail",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    let cfg = dir.path().join("mta.toml");
    let add = |addr: &str| {
        run_with_input(
            std::process::Command::new(greyd_tests::bin("mtactl"))
                .args(["user", "add", addr, "--password-stdin", "--config"])
                .arg(&cfg),
            b"pw\n",
        )
    };
    assert!(add("u1@d.test").status.success());
    assert!(!add("u1@d.test").status.success(), "adding twice must fail");
    assert!(add("u2@d.test").status.success());
    assert!(dir.path().join("mail/d.test/u1/new").is_dir());
    let list = run_ok(
        std::process::Command::new(greyd_tests::bin("mtactl"))
            .args(["user", "list", "--config"])
            .arg(&cfg),
    );
    assert_eq!(list, "u1@d.test\nu2@d.test\n");
    run_ok(
        std::process::Command::new(greyd_tests::bin("mtactl"))
            .args(["user", "del", "u1@d.test", "--config"])
            .arg(&cfg),
    );
    let list = run_ok(
        std::process::Command::new(greyd_tests::bin("mtactl"))
            .args(["user", "list", "--config"])
            .arg(&cfg),
    );
    assert_eq!(list, "u2@d.test\n");
}

#[test]
fn sendmail_t_and_bs_deliver() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    setup.add_user("carol@example.test", "pw");
    let _mta = setup.start();
    let input =
        b"To: Alice <alice@example.test>\nBcc: carol@example.test\nSubject: from -t\n\nline one\n.\nafter the dot\n";
    let out = run_with_input(
        setup
            .command("sendmail")
            .args(["-t", "-f", "root@mx.test", "-F", "Cron Daemon"]),
        input,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for user in ["alice@example.test", "carol@example.test"] {
        let msgs = wait_messages(&setup.maildir(user), 1);
        let (received, rest) = strip_trace(&msgs[0], "root@mx.test");
        assert!(
            received.starts_with("Received: by mx.test (mta sendmail, from userid"),
            "{received}"
        );
        let text = String::from_utf8(rest).unwrap();
        assert!(
            text.starts_with("From: \"Cron Daemon\" <root@mx.test>\nDate: "),
            "{text}"
        );
        // Bcc: removed; the lone dot ended the input (no -i).
        assert!(
            !text.contains("Bcc") && text.ends_with("Subject: from -t\n\nline one\n"),
            "{text}"
        );
    }
    // -i keeps lone dots; -bs speaks SMTP on stdio.
    let out = run_with_input(
        setup.command("sendmail").args(["-i", "alice@example.test"]),
        b"Subject: i\n\n.\nkept\n",
    );
    assert!(out.status.success());
    let session = b"EHLO local\r\nMAIL FROM:<cron@mx.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: bs\r\n\r\nvia -bs\r\n.\r\nQUIT\r\n";
    let out = run_with_input(setup.command("sendmail").arg("-bs"), session);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("220 mx.test")
            && text.contains("250 2.0.0 Ok: queued as ")
            && text.ends_with("221 2.0.0 Bye\r\n"),
        "{text}"
    );
    let msgs = wait_messages(&setup.maildir("alice@example.test"), 3);
    let all: String = msgs.iter().map(|m| String::from_utf8_lossy(m).into_owned()).collect();
    assert!(
        all.contains("Subject: i\n\n.\nkept\n") && all.contains("via -bs"),
        "{all}"
    );
    // Unknown local recipients: an error and EX_NOUSER.
    let out = run_with_input(setup.command("sendmail").arg("nobody-here@example.test"), b"x\n");
    assert_eq!(out.status.code(), Some(67));
    assert!(String::from_utf8_lossy(&out.stderr).contains("550 5.1.1"));
}

#[test]
fn newaliases_reports_errors_with_line_numbers() {
    let setup = MtaSetup::new();
    setup.write("aliases", "# ok\nroot: alice\nbroken line\nlist: a,\n  b\nempty:\n");
    let out = setup.command("newaliases").output().unwrap();
    assert_eq!(out.status.code(), Some(65));
    let err = String::from_utf8_lossy(&out.stderr);
    let aliases = setup.root().join("aliases");
    assert_eq!(
        err,
        format!(
            "{0}:3: missing ':' after the alias name\n{0}:6: alias empty has no targets\n",
            aliases.display()
        )
    );
    setup.write("aliases", "root: alice\nlist: a,\n  b\n");
    let out = run_ok(&mut setup.command("newaliases"));
    assert_eq!(out, format!("{}: 2 aliases\n", aliases.display()));
}

#[test]
fn unprivileged_users_send_through_the_submission_socket() {
    if !greyd_tests::netns::have_root("unprivileged_users_send_through_the_submission_socket") {
        return;
    }
    let user = SystemUser::create("snd");
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    // The user may read the configuration, but not write the spool or read the users file.
    std::fs::set_permissions(setup.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let as_user = |args: &[&str]| {
        let mut cmd = std::process::Command::new("runuser");
        cmd.args(["-u", &user.name, "--"]).args(args);
        cmd
    };
    let queue = setup.root().join("queue");
    let probe = as_user(&["test", "-w", queue.to_str().unwrap()]).status().unwrap();
    assert!(
        !probe.success(),
        "the spool must not be writable by the user for this test"
    );
    let _mta = setup.start();
    let sendmail = greyd_tests::bin("sendmail");
    let config = setup.config.to_str().unwrap().to_string();
    let out = run_with_input(
        &mut as_user(&[sendmail.to_str().unwrap(), "-C", &config, "alice@example.test"]),
        b"Subject: from a user\n\nhello\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let msgs = wait_messages(&setup.maildir("alice@example.test"), 1);
    let sender = format!("{}@{HOST}", user.name);
    let (received, rest) = strip_trace(&msgs[0], &sender);
    let uid = run_ok(std::process::Command::new("id").args(["-u", &user.name]));
    assert!(
        received.starts_with(&format!(
            "Received: by {HOST} (mta sendmail, from userid {})",
            uid.trim()
        )),
        "{received}"
    );
    let text = String::from_utf8(rest).unwrap();
    assert!(text.starts_with(&format!("From: <{sender}>\n")), "{text}");
    // Refused recipients come back as sendmail's exit code and message.
    let out = run_with_input(
        &mut as_user(&[sendmail.to_str().unwrap(), "-C", &config, "nobody-here@example.test"]),
        b"x\n",
    );
    assert_eq!(out.status.code(), Some(67), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("550 5.1.1"));
}
