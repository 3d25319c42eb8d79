//! mta queue and local delivery end to end: durability across kill -9,
//! aliases to mbox files and programs, virtusertable, retries of temporary
//! failures, bounces, and PROXY v2 from a trusted front (greyd).

use greyd_tests::mta::*;
use greyd_tests::users::SystemUser;
use std::io::Write;
use std::time::Duration;

fn send(addr: std::net::SocketAddr, from: &str, rcpts: &[&str], body: &str) -> String {
    let rcpts: Vec<String> = rcpts.iter().map(|r| format!("<{r}>")).collect();
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    send_transaction(addr, &format!("<{from}>"), &rcpts, body)
}

#[test]
fn accepted_mail_survives_kill_9() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    // Deliveries wait for a lock we hold, so the message is only in the queue when we kill.
    let mbox = setup.root().join("held.mbox");
    setup.write("aliases", &format!("held: {}\n", mbox.display()));
    std::fs::write(setup.root().join("held.mbox.lock"), "").unwrap();
    let mut mta = setup.start();
    let id = send(
        setup.smtp,
        "bob@remote.test",
        &["held@example.test", "alice@example.test"],
        "Subject: durable\r\n\r\nkeep me\r\n",
    );
    mta.kill9();
    assert!(setup.root().join("queue").join(format!("{id}.env")).exists());
    let q = run_ok(&mut setup.command("mailq"));
    assert!(q.contains(&id), "{q}");
    std::fs::remove_file(setup.root().join("held.mbox.lock")).unwrap();
    let _mta = setup.start();
    let mbox_text = String::from_utf8(wait_file(&mbox)).unwrap();
    assert!(mbox_text.contains("keep me"), "{mbox_text}");
    let msgs = wait_messages(&setup.maildir("alice@example.test"), 1);
    assert!(String::from_utf8_lossy(&msgs[0]).contains(&format!("id {id}")));
}

#[test]
fn aliases_deliver_to_mbox_programs_and_lists() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    let mbox = setup.root().join("list.mbox");
    let piped = setup.root().join("piped.out");
    let include = setup.root().join("members");
    std::fs::write(&include, "# members\nalice@example.test\n").unwrap();
    setup.write(
        "aliases",
        &format!(
            "list: {}, \"|cat > {}\", :include:{}\npostmaster: alice@example.test\n",
            mbox.display(),
            piped.display(),
            include.display()
        ),
    );
    let _mta = setup.start();
    let body = "Subject: to list\r\n\r\nFrom the start\r\n>From quoted\r\n..dot\r\n";
    send(setup.smtp, "bob@remote.test", &["list@example.test"], body);
    let text = String::from_utf8(wait_file(&mbox)).unwrap();
    let (from_line, rest) = text.split_once('\n').unwrap();
    assert!(from_line.starts_with("From bob@remote.test "), "{from_line}");
    let (_, content) = strip_trace(rest.as_bytes(), "bob@remote.test");
    assert_eq!(
        String::from_utf8(content).unwrap(),
        "Subject: to list\n\n>From the start\n>>From quoted\n.dot\n\n"
    );
    let piped_text = String::from_utf8(wait_file(&piped)).unwrap();
    assert!(
        piped_text.ends_with("Subject: to list\n\nFrom the start\n>From quoted\n.dot\n"),
        "{piped_text}"
    );
    wait_messages(&setup.maildir("alice@example.test"), 1);
    // postmaster without a domain is accepted (RFC 5321 4.5.1).
    let mut c = smtp(setup.smtp);
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    assert_eq!(c.cmd("MAIL FROM:<>").unwrap().code, 250);
    assert_eq!(c.cmd("RCPT TO:<Postmaster>").unwrap().code, 250);
}

#[test]
fn virtusertable_routes_and_rejects() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    setup.write(
        "virtusertable",
        "info@virtual.test alice@example.test\ngone@virtual.test error:5.1.6:550 User has moved\n@virtual.test alice+%1@example.test\n",
    );
    let folder = setup.maildir("alice@example.test").join(".sales");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(folder.join(sub)).unwrap();
    }
    std::fs::write(folder.join("maildirfolder"), "").unwrap();
    let _mta = setup.start();
    let mut c = smtp(setup.smtp);
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    assert_eq!(c.cmd("MAIL FROM:<bob@remote.test>").unwrap().code, 250);
    let r = c.cmd("RCPT TO:<gone@virtual.test>").unwrap();
    assert_eq!((r.code, r.text()), (550, "5.1.6 User has moved".to_string()));
    assert_eq!(c.cmd("RCPT TO:<nobody-such@example.test>").unwrap().code, 550);
    drop(c);
    send(
        setup.smtp,
        "bob@remote.test",
        &["info@virtual.test"],
        "Subject: info\r\n\r\nx\r\n",
    );
    send(
        setup.smtp,
        "bob@remote.test",
        &["sales@virtual.test"],
        "Subject: sales\r\n\r\nx\r\n",
    );
    let inbox = wait_messages(&setup.maildir("alice@example.test"), 1);
    assert!(String::from_utf8_lossy(&inbox[0]).contains("Subject: info"));
    let sales = wait_messages(&folder, 1);
    assert!(String::from_utf8_lossy(&sales[0]).contains("Subject: sales"));
}

#[test]
fn temporary_failures_are_retried_and_permanent_ones_bounce() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    let later = setup.root().join("later");
    setup.write(
        "aliases",
        &format!("slow: {}/mbox\nbroken: \"|exit 1\"\n", later.display()),
    );
    setup.edit("retry_interval = \"5m\"", "retry_interval = \"1s\"");
    // A file stands where the mbox's directory should be: a temporary failure.
    std::fs::write(&later, "").unwrap();
    let mta = setup.start();
    let id = send(
        setup.smtp,
        "alice@example.test",
        &["slow@example.test"],
        "Subject: retry\r\n\r\nx\r\n",
    );
    mta.wait_log(
        &format!("{id}: to=<slow@example.test>, relay=local, status=deferred"),
        Duration::from_secs(10),
    );
    std::fs::remove_file(&later).unwrap();
    std::fs::create_dir(&later).unwrap();
    let text = String::from_utf8(wait_file(&later.join("mbox"))).unwrap();
    assert!(text.contains("Subject: retry"));
    // A program failing with status 1 is permanent: alice gets a bounce.
    let id = send(
        setup.smtp,
        "alice@example.test",
        &["broken@example.test"],
        "Subject: doomed\r\n\r\nx\r\n",
    );
    mta.wait_log(
        &format!("{id}: to=<broken@example.test>, status=bounced"),
        Duration::from_secs(10),
    );
    let bounce = wait_messages(&setup.maildir("alice@example.test"), 1);
    let text = String::from_utf8_lossy(&bounce[0]);
    assert!(text.starts_with("Return-Path: <>\n"), "{text}");
    assert!(
        text.contains("Subject: Undelivered Mail Returned to Sender") && text.contains("Subject: doomed"),
        "{text}"
    );
}

#[test]
fn proxy_v2_header_gives_the_real_client() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    setup.edit("proxy_from = []", "proxy_from = [\"127.0.0.1\"]");
    setup.edit("networks = []", "networks = [\"127.0.0.77/32\"]");
    let _mta = setup.start();
    // From the trusted front: the header names client 127.0.0.77, which may relay.
    let stream = std::net::TcpStream::connect(setup.smtp).unwrap();
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    header.extend_from_slice(&[127, 0, 0, 77, 127, 0, 0, 1, 0x30, 0x39, 0, 25]);
    (&stream).write_all(&header).unwrap();
    let mut c = greyd_tests::SmtpClient::new(stream, Duration::from_secs(10));
    assert_eq!(c.reply().unwrap().code, 220);
    let ehlo = c.cmd("EHLO front.test").unwrap();
    assert!(ehlo.lines[0].contains("[127.0.0.77]"), "{ehlo:?}");
    assert_eq!(c.cmd("MAIL FROM:<a@remote.test>").unwrap().code, 250);
    assert_eq!(c.cmd("RCPT TO:<x@other.test>").unwrap().code, 250);
    assert_eq!(c.cmd("RCPT TO:<alice@example.test>").unwrap().code, 250);
    assert_eq!(c.cmd("DATA").unwrap().code, 354);
    assert_eq!(c.cmd("Subject: proxied\r\n\r\nx\r\n.").unwrap().code, 250);
    let msgs = wait_messages(&setup.maildir("alice@example.test"), 1);
    assert!(String::from_utf8_lossy(&msgs[0]).contains("Received: from front.test ([127.0.0.77])"));
    // Without the header the trusted address is dropped.
    let mut bare = greyd_tests::SmtpClient::new(
        std::net::TcpStream::connect(setup.smtp).unwrap(),
        Duration::from_secs(10),
    );
    bare.send_raw(b"EHLO x\r\nQUIT\r\n").unwrap();
    assert!(bare.reply().is_err());
    // Other clients speak plain SMTP and cannot claim an address.
    let other = greyd_tests::connect_from("127.0.0.2".parse().unwrap(), setup.smtp).unwrap();
    let mut c = greyd_tests::SmtpClient::new(other, Duration::from_secs(10));
    assert_eq!(c.reply().unwrap().code, 220);
    assert!(c.cmd("EHLO x").unwrap().lines[0].contains("[127.0.0.2]"));
}

#[test]
fn dsn_parameters_are_kept_in_the_envelope() {
    let setup = MtaSetup::new();
    let mbox = setup.root().join("held.mbox");
    setup.write("aliases", &format!("held: {}\n", mbox.display()));
    std::fs::write(setup.root().join("held.mbox.lock"), "").unwrap();
    let _mta = setup.start();
    let mut c = smtp(setup.smtp);
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    assert_eq!(
        c.cmd("MAIL FROM:<bob@remote.test> RET=HDRS ENVID=env+2B1")
            .unwrap()
            .code,
        250
    );
    let r = c
        .cmd("RCPT TO:<held@example.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;held@example.test")
        .unwrap();
    assert_eq!(r.code, 250, "{r:?}");
    assert_eq!(c.cmd("DATA").unwrap().code, 354);
    let r = c.cmd("Subject: dsn\r\n\r\nx\r\n.").unwrap();
    let id = r.text().rsplit(' ').next().unwrap().to_string();
    let env = std::fs::read_to_string(setup.root().join("queue").join(format!("{id}.env"))).unwrap();
    for needle in [
        "\"Hdrs\"",
        "\"env+2B1\"",
        "\"SUCCESS\"",
        "\"DELAY\"",
        "\"rfc822;held@example.test\"",
    ] {
        assert!(env.contains(needle), "{needle} missing from {env}");
    }
}

#[test]
fn etrn_retries_deferred_mail_at_once() {
    let setup = MtaSetup::new();
    let later = setup.root().join("later");
    setup.write("aliases", &format!("slow: {}/mbox\n", later.display()));
    // A file stands where the mbox's directory should be: a temporary failure.
    std::fs::write(&later, "").unwrap();
    let mta = setup.start();
    let id = send(
        setup.smtp,
        "bob@remote.test",
        &["slow@example.test"],
        "Subject: etrn\r\n\r\nx\r\n",
    );
    mta.wait_log(
        &format!("{id}: to=<slow@example.test>, relay=local, status=deferred"),
        Duration::from_secs(10),
    );
    std::fs::remove_file(&later).unwrap();
    std::fs::create_dir(&later).unwrap();
    // The next retry is 5 minutes away; ETRN asks for it now.
    let mut c = smtp(setup.smtp);
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    assert_eq!(c.cmd("ETRN example.test").unwrap().code, 250);
    let text = String::from_utf8(wait_file(&later.join("mbox"))).unwrap();
    assert!(text.contains("Subject: etrn"), "{text}");
}

#[test]
fn forward_file_of_a_system_user_is_followed() {
    if !greyd_tests::netns::have_root("forward_file_of_a_system_user_is_followed") {
        return;
    }
    let user = SystemUser::create("fwd");
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    // A copy to alice, and one kept in the user's own Maildir (the backslash stops aliasing).
    user.write(
        ".forward",
        &format!("# forwarding\nalice@example.test, \\{}\n", user.name),
    );
    let _mta = setup.start();
    send(
        setup.smtp,
        "bob@remote.test",
        &[&format!("{}@{HOST}", user.name)],
        "Subject: fwd\r\n\r\nhello\r\n",
    );
    let forwarded = wait_messages(&setup.maildir("alice@example.test"), 1);
    let kept = wait_messages(&user.home.join("Maildir"), 1);
    for msg in [&forwarded[0], &kept[0]] {
        let (_, content) = strip_trace(msg, "bob@remote.test");
        assert_eq!(content, b"Subject: fwd\n\nhello\n");
    }
    let new = user.home.join("Maildir/new");
    let file = std::fs::read_dir(&new).unwrap().next().unwrap().unwrap();
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(user.home.join("Maildir")).unwrap().uid();
    assert_eq!(file.metadata().unwrap().uid(), owner, "delivered as the user");
    assert_ne!(owner, 0);
}

#[test]
fn mta_runs_as_the_configured_user_after_binding() {
    if !greyd_tests::netns::have_root("mta_runs_as_the_configured_user_after_binding") {
        return;
    }
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    setup.edit("user = \"\"", "user = \"nobody\"");
    run_ok(
        std::process::Command::new("chown")
            .args(["-R", "nobody"])
            .arg(setup.dir.path()),
    );
    let mta = setup.start();
    mta.wait_log("running as nobody", Duration::from_secs(10));
    let status = std::fs::read_to_string(format!("/proc/{}/status", mta.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap().to_string();
    let nobody = run_ok(std::process::Command::new("id").args(["-u", "nobody"]));
    assert_eq!(uid_line.split_whitespace().nth(1), Some(nobody.trim()), "{uid_line}");
    send(
        setup.smtp,
        "bob@remote.test",
        &["alice@example.test"],
        "Subject: x\r\n\r\ny\r\n",
    );
    wait_messages(&setup.maildir("alice@example.test"), 1);
}

#[test]
fn every_domain_has_a_postmaster_the_first_user_by_default() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    // A virtual-only domain, with no aliases of its own.
    setup.add_user("carol@virtual.test", "pw");
    let aliases = std::fs::read_to_string(setup.root().join("aliases")).unwrap();
    assert!(aliases.contains("postmaster: alice@example.test"), "{aliases}");
    let _mta = setup.start();
    send(
        setup.smtp,
        "bob@remote.test",
        &["postmaster@example.test", "PostMaster@virtual.test"],
        "Subject: to the postmaster\r\n\r\nhello\r\n",
    );
    // One copy per recipient address: both postmasters are alice.
    let msgs = wait_messages(&setup.maildir("alice@example.test"), 2);
    assert!(
        msgs.iter()
            .all(|m| String::from_utf8_lossy(m).contains("Subject: to the postmaster"))
    );
    assert!(
        !setup
            .maildir("carol@virtual.test")
            .join("new")
            .read_dir()
            .unwrap()
            .any(|_| true),
        "carol is not the postmaster"
    );
}

#[test]
fn a_user_setting_the_files_do_not_allow_is_refused_at_start_and_mtactl_keeps_owners() {
    if !greyd_tests::netns::have_root("a_user_setting_the_files_do_not_allow_is_refused_at_start") {
        return;
    }
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    setup.edit("user = \"\"", "user = \"nobody\"");
    // As `mtactl init` run by root leaves it: everything root's, users file 0600.
    let out = setup.command("mta").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "mta must refuse to start: {err}");
    for named in ["queue", "users", "key.pem", "chown it to nobody"] {
        assert!(err.contains(named), "{named:?} not in: {err}");
    }
    run_ok(
        std::process::Command::new("chown")
            .args(["-R", "nobody"])
            .arg(setup.dir.path()),
    );
    // mtactl run by root afterwards keeps the users file and makes the Maildir nobody's.
    setup.add_user("bob@example.test", "pw");
    use std::os::unix::fs::MetadataExt;
    let nobody: u32 = run_ok(std::process::Command::new("id").args(["-u", "nobody"]))
        .trim()
        .parse()
        .unwrap();
    let users = std::fs::metadata(setup.root().join("users")).unwrap();
    assert_eq!((users.uid(), users.mode() & 0o777), (nobody, 0o600));
    let maildir = setup.maildir("bob@example.test");
    for dir in [maildir.clone(), maildir.join("new"), maildir.join(".Sent").join("cur")] {
        assert_eq!(std::fs::metadata(&dir).unwrap().uid(), nobody, "{}", dir.display());
    }
    let mta = setup.start();
    mta.wait_log("running as nobody", Duration::from_secs(10));
    send(
        setup.smtp,
        "carol@remote.test",
        &["bob@example.test"],
        "Subject: for bob\r\n\r\nhello\r\n",
    );
    wait_messages(&maildir, 1);
    // The certificate can still be reloaded after the drop.
    // SAFETY: kill(2) on the daemon we started.
    unsafe { libc::kill(mta.pid() as i32, libc::SIGHUP) };
    mta.wait_log("SIGHUP: TLS certificate reloaded", Duration::from_secs(10));
}

#[test]
fn files_a_crash_left_in_the_queue_are_removed_once_older_than_the_data_timeout() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    setup.edit("data_timeout = \"10m\"", "data_timeout = \"2s\"");
    let queue = setup.root().join("queue");
    let mta = setup.start();
    // What a kill -9 between writing and the 250 leaves: content without an
    // envelope, and an envelope that was never renamed into place.
    std::fs::write(queue.join("06B0000000000000000000.msg"), "Subject: never acked\r\n\r\n").unwrap();
    std::fs::write(queue.join("06B0000000000000000001.env.tmp"), "{").unwrap();
    let id = send(
        setup.smtp,
        "bob@remote.test",
        &["alice@example.test"],
        "Subject: real\r\n\r\nx\r\n",
    );
    mta.wait_log(
        "queue: removed 2 files left by a crash (never acknowledged)",
        Duration::from_secs(15),
    );
    assert!(!queue.join("06B0000000000000000000.msg").exists());
    assert!(!queue.join("06B0000000000000000001.env.tmp").exists());
    let msgs = wait_messages(&setup.maildir("alice@example.test"), 1);
    assert!(
        String::from_utf8_lossy(&msgs[0]).contains("Subject: real"),
        "{id} delivered"
    );
}
