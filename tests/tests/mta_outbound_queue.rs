//! How the queue treats outbound mail, end to end against scripted peers
//! on loopback: delay warnings (once, honouring NOTIFY, never for bounces),
//! success reports of our own for peers without DSN (`Action: relayed`)
//! and DSN parameters passed on to peers with it, `mtactl queue delete
//! --bounce`, transport entries that keep a domain's mail here (`local`);
//! and the connections it makes: reused for the next message, at most
//! `destination_concurrency` at once, none to a server that just timed out;
//! Postfix's smtp-sink as the receiving peer.

use greyd_tests::dns::DnsServer;
use greyd_tests::mta::{run_ok, send_transaction, wait_messages};
use greyd_tests::outbound::*;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

#[test]
fn delay_warning_once_per_message_honouring_notify_never_for_bounces() {
    // The warning is due 2 s after arrival; the backoff alone would wait an hour.
    let (_dns, _peer, tx) = scripted_host(
        "slowpoke.test",
        11,
        always_later,
        &[("retry_interval", "1h"), ("delay_warning", "2s")],
    );
    let out = tx.start();
    let body = "From: <alice@sender.test>\r\nSubject: patience\r\n\r\nstill there?\r\n";
    let sender = format!("<{SENDER}>");
    send_transaction(
        tx.smtp,
        &format!("{sender} ENVID=wait1"),
        &["<warn@slowpoke.test> ORCPT=rfc822;Warn@slowpoke.test"],
        body,
    );
    send_transaction(tx.smtp, &sender, &["<never@slowpoke.test> NOTIFY=NEVER"], body);
    send_transaction(
        tx.smtp,
        &sender,
        &["<nodelay@slowpoke.test> NOTIFY=SUCCESS,FAILURE"],
        body,
    );
    send_transaction(tx.smtp, "<>", &["<bounce@slowpoke.test>"], body);
    let attempts = |rcpt: &str| out.log().matches(&format!("to=<{rcpt}>, relay=")).count();
    // Mail from <> has no warning due, so nothing brings its retry forward.
    let warnable = ["warn", "never", "nodelay"].map(|l| format!("{l}@slowpoke.test"));
    wait_until("a second attempt of each message", Duration::from_secs(20), || {
        warnable.iter().all(|r| attempts(r) >= 2)
    });
    let got = wait_messages(&tx.maildir(SENDER), 1);
    let dsn = String::from_utf8_lossy(&got[0]).into_owned();
    for want in [
        "Subject: Delayed Mail (still being retried)",
        "Content-Type: multipart/report; report-type=delivery-status",
        "Original-Envelope-Id: wait1",
        "Final-Recipient: rfc822; warn@slowpoke.test",
        "Original-Recipient: rfc822; Warn@slowpoke.test",
        "Action: delayed",
        "Status: 4.2.0",
        "Diagnostic-Code: smtp; 450 4.2.0 mailbox busy",
        "Will-Retry-Until: ",
        "Subject: patience",
    ] {
        assert!(dsn.contains(want), "{want:?} missing in {dsn}");
    }
    for other in ["never@", "nodelay@", "bounce@"] {
        assert!(!dsn.contains(other), "{other} in {dsn}");
    }
    // A later attempt (sendmail -q) warns no more, and the bounce gets none.
    run_ok(tx.command("sendmail").arg("-q"));
    wait_until("another attempt of each message", Duration::from_secs(20), || {
        warnable.iter().all(|r| attempts(r) >= 3) && attempts("bounce@slowpoke.test") >= 2
    });
    std::thread::sleep(Duration::from_secs(1));
    wait_messages(&tx.maildir(SENDER), 1);
    assert_eq!(
        out.log().matches("sender delay notification").count(),
        1,
        "{}",
        out.log()
    );
}

#[test]
fn delete_with_bounce_tells_the_sender() {
    let (_dns, _peer, tx) = scripted_host("stuck.test", 14, always_later, &[("retry_interval", "1h")]);
    let out = tx.start();
    let body = "From: <alice@sender.test>\r\nSubject: never mind\r\n\r\nx\r\n";
    send_transaction(
        tx.smtp,
        &format!("<{SENDER}>"),
        &["<one@stuck.test>", "<two@stuck.test>"],
        body,
    );
    send_transaction(
        tx.smtp,
        &format!("<{SENDER}>"),
        &["<quiet@stuck.test> NOTIFY=NEVER"],
        body,
    );
    out.wait_log("to=<two@stuck.test>, relay=", Duration::from_secs(10));
    out.wait_log("to=<quiet@stuck.test>, relay=", Duration::from_secs(10));
    let id = queue_id(&tx, "one@stuck.test");
    let said = run_ok(tx.command("mtactl").args(["queue", "delete", &id, "--bounce"]));
    assert!(
        said.contains("removed and bounced (2 recipients undelivered)"),
        "{said}"
    );
    let quiet = queue_id(&tx, "quiet@stuck.test");
    run_ok(tx.command("mtactl").args(["queue", "hold", &quiet]));
    run_ok(tx.command("mtactl").args(["queue", "delete", &quiet, "--bounce"]));
    let q = run_ok(&mut tx.command("mailq"));
    assert!(!q.contains("@stuck.test"), "{q}");
    let got = wait_messages(&tx.maildir(SENDER), 1);
    let dsn = String::from_utf8_lossy(&got[0]).into_owned();
    for want in [
        "Subject: Undelivered Mail Returned to Sender",
        "Final-Recipient: rfc822; one@stuck.test",
        "Final-Recipient: rfc822; two@stuck.test",
        "Action: failed",
        "Status: 5.7.0",
        "deleted from the queue by the mail administrator",
        "Subject: never mind",
    ] {
        assert!(dsn.contains(want), "{want:?} missing in {dsn}");
    }
    assert!(!dsn.contains("quiet@"), "{dsn}");
    std::thread::sleep(Duration::from_secs(1));
    wait_messages(&tx.maildir(SENDER), 1);
}

#[test]
fn transport_local_keeps_a_domain_here() {
    let dns = DnsServer::start();
    let port = greyd_tests::free_port();
    let tx = sender(&dns, port, &[]);
    tx.write("transport", "here.test local\n.near.test local\n");
    tx.write("aliases", "desk: alice@sender.test\n");
    let table = tx.root().join("transport");
    tx.edit(
        "[outbound]\n",
        &format!("[outbound]\ntransport = \"{}\"\n", table.display()),
    );
    let out = tx.start();
    // No DNS records and no server for these domains: only local delivery can work.
    let body = "From: <bob@remote.test>\r\nSubject: for the desk\r\n\r\nx\r\n";
    send_transaction(tx.smtp, "<bob@remote.test>", &["<desk@here.test>"], body);
    send_transaction(tx.smtp, "<bob@remote.test>", &["<desk@mx.near.test>"], body);
    let got = wait_messages(&tx.maildir(SENDER), 2);
    assert!(
        got.iter()
            .all(|m| String::from_utf8_lossy(m).contains("Subject: for the desk"))
    );
    let log = out.log();
    assert!(log.contains("to=<desk@here.test>, relay=local"), "{log}");
    assert!(log.contains("to=<desk@mx.near.test>, relay=local"), "{log}");
}

fn offers_dsn(conn: usize, cmd: &str) -> Act {
    if cmd.starts_with("EHLO") {
        Act::Reply("250-peer.test\r\n250-PIPELINING\r\n250 DSN")
    } else {
        accept_all(conn, cmd)
    }
}

#[test]
fn notify_success_is_reported_relayed_for_peers_without_dsn_and_passed_on_to_others() {
    let dns = DnsServer::start();
    let port = greyd_tests::free_port();
    dns.a("nodsn.test", Ipv4Addr::new(127, 0, 0, 15));
    dns.a("dsn.test", Ipv4Addr::new(127, 0, 0, 16));
    let plain = Peer::start(SocketAddr::from(([127, 0, 0, 15], port)), accept_all);
    let aware = Peer::start(SocketAddr::from(([127, 0, 0, 16], port)), offers_dsn);
    let tx = sender(&dns, port, &[]);
    let _out = tx.start();
    send_transaction(
        tx.smtp,
        &format!("<{SENDER}> RET=HDRS ENVID=trip+2B1"),
        &[
            "<a@nodsn.test> NOTIFY=SUCCESS ORCPT=rfc822;A+2Bx@nodsn.test",
            "<b@dsn.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B@dsn.test",
        ],
        "From: <alice@sender.test>\r\nSubject: did it arrive\r\n\r\nsecret body\r\n",
    );
    wait_until("both deliveries", Duration::from_secs(15), || {
        plain.messages() == 1 && aware.messages() == 1
    });
    let got = wait_messages(&tx.maildir(SENDER), 1);
    let dsn = String::from_utf8_lossy(&got[0]).into_owned();
    for want in [
        "Subject: Successful Mail Delivery Report",
        "Original-Envelope-Id: trip+1",
        "Final-Recipient: rfc822; a@nodsn.test",
        "Original-Recipient: rfc822; A+x@nodsn.test",
        "Action: relayed",
        "Status: 2.0.0",
        "Remote-MTA: dns; nodsn.test",
        "Diagnostic-Code: smtp; 250 2.0.0 queued as X1",
        "Subject: did it arrive",
    ] {
        assert!(dsn.contains(want), "{want:?} missing in {dsn}");
    }
    // RET=HDRS: headers only.
    assert!(!dsn.contains("secret body"), "{dsn}");
    // The DSN-aware peer got the parameters and reports for itself.
    assert!(!dsn.contains("b@dsn.test"), "{dsn}");
    let seen = aware.seen();
    assert!(
        seen.contains(&format!("MAIL FROM:<{SENDER}> RET=HDRS ENVID=trip+2B1")),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"RCPT TO:<b@dsn.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B@dsn.test".to_string()),
        "{seen:?}"
    );
    assert!(
        plain.seen().contains(&"RCPT TO:<a@nodsn.test>".to_string()),
        "{:?}",
        plain.seen()
    );
    std::thread::sleep(Duration::from_secs(1));
    wait_messages(&tx.maildir(SENDER), 1);
}

fn slow_data(conn: usize, cmd: &str) -> Act {
    match cmd {
        "." => Act::Slow("250 2.0.0 queued as X1"),
        c => accept_all(conn, c),
    }
}

#[test]
fn connections_are_reused_and_limited_per_destination() {
    let (_dns, peer, tx) = scripted_host("busy.test", 17, slow_data, &[]);
    tx.edit("destination_concurrency = 20", "destination_concurrency = 2");
    let out = tx.start();
    for i in 0..6 {
        send_transaction(
            tx.smtp,
            &format!("<{SENDER}>"),
            &[&format!("<r{i}@busy.test>")],
            &format!("Subject: number {i}\r\n\r\nx\r\n"),
        );
    }
    wait_until("six deliveries", Duration::from_secs(30), || peer.messages() == 6);
    out.wait_log("to=<r5@busy.test>, relay=", Duration::from_secs(5));
    // Each delivery takes 0.7 s and all six were queued at once: two at a
    // time, each of the two connections carrying three messages.
    assert_eq!(peer.most_at_once(), 2);
    assert_eq!(peer.connections(), 2);
    let rsets = peer.seen().iter().filter(|l| *l == "RSET").count();
    assert_eq!(rsets, 4, "{:?}", peer.seen());
}

#[test]
fn a_server_that_timed_out_is_not_tried_again_for_a_while() {
    let dns = DnsServer::start();
    let port = greyd_tests::free_port();
    dns.a("silent.test", Ipv4Addr::new(127, 0, 0, 18));
    // Accepts connections and never greets.
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 18], port))).unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&accepted);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().map_while(Result::ok) {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(stream);
        }
    });
    let tx = sender(&dns, port, &[]);
    tx.edit("connect_timeout = \"30s\"", "connect_timeout = \"2s\"");
    let out = tx.start();
    send_transaction(
        tx.smtp,
        &format!("<{SENDER}>"),
        &["<first@silent.test>"],
        "Subject: 1\r\n\r\nx\r\n",
    );
    out.wait_log("to=<first@silent.test>, relay=", Duration::from_secs(10));
    assert!(out.log().contains("dsn=4.4.1, status=deferred"), "{}", out.log());
    let start = std::time::Instant::now();
    for rcpt in ["second@silent.test", "third@silent.test"] {
        send_transaction(
            tx.smtp,
            &format!("<{SENDER}>"),
            &[&format!("<{rcpt}>")],
            "Subject: n\r\n\r\nx\r\n",
        );
        out.wait_log(&format!("to=<{rcpt}>, relay="), Duration::from_secs(10));
    }
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    let log = out.log();
    assert_eq!(
        log.matches("did not answer recently; not tried again yet").count(),
        2,
        "{log}"
    );
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    let q = run_ok(&mut tx.command("mailq"));
    assert!(
        q.contains("second@silent.test") && q.contains("third@silent.test"),
        "{q}"
    );
}

#[test]
fn smtp_sink_receives_all_recipients_in_one_transaction() {
    use std::os::unix::fs::PermissionsExt;
    let dns = DnsServer::start();
    let port = greyd_tests::free_port();
    dns.mx("sink.test", 10, "mx.sink.test");
    dns.a("mx.sink.test", Ipv4Addr::new(127, 0, 0, 19));
    let dumps = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dumps.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let _sink = greyd_tests::Daemon::spawn({
        let mut c = std::process::Command::new("/usr/sbin/smtp-sink");
        c.args(["-u", "nobody", "-d"])
            .arg(dumps.path().join("m."))
            .args([&format!("127.0.0.19:{port}"), "10"]);
        c
    });
    greyd_tests::wait_port(SocketAddr::from(([127, 0, 0, 19], port)), Duration::from_secs(5));
    let tx = sender(&dns, port, &[]);
    let out = tx.start();
    send(&tx, &["one@sink.test", "two@sink.test"], "into the sink");
    out.wait_log("to=<two@sink.test>, relay=mx.sink.test", Duration::from_secs(15));
    wait_until("the dump", Duration::from_secs(5), || {
        std::fs::read_dir(dumps.path()).unwrap().count() == 1
    });
    let file = std::fs::read_dir(dumps.path()).unwrap().next().unwrap().unwrap().path();
    let dump = String::from_utf8(std::fs::read(file).unwrap()).unwrap();
    let lines: Vec<&str> = dump.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("X-Mail-Args: <{SENDER}>"))),
        "{dump}"
    );
    assert!(lines.contains(&"X-Rcpt-Args: <one@sink.test>"), "{dump}");
    assert!(lines.contains(&"X-Rcpt-Args: <two@sink.test>"), "{dump}");
    assert!(lines.contains(&"Subject: into the sink"), "{dump}");
    // Dot-stuffing undone by the sink gives back the line as it was.
    assert!(lines.contains(&".line starting with a dot"), "{dump}");
    assert!(out.log().matches("status=sent (250").count() == 2, "{}", out.log());
    wait_until("the queue to empty", Duration::from_secs(10), || queue_is_empty(&tx));
}
