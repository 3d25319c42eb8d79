//! Outbound delivery end to end: a sending mta resolves through a real DNS
//! server on loopback and delivers to real peers on 127.x addresses (a
//! second mta, Postfix's smtp-sink, scripted SMTP responders), with
//! bounces read back from the sender's mailbox.

use greyd_tests::Daemon;
use greyd_tests::dns::{Broken, DnsServer};
use greyd_tests::mta::{MtaSetup, run_ok, wait_messages};
use greyd_tests::outbound::*;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

#[test]
fn mx_priority_fallback_and_starttls_to_a_second_mta() {
    let dns = DnsServer::start();
    let port = greyd_tests::free_port();
    let mut rx = MtaSetup::new();
    rx.listen_smtp(SocketAddr::from(([127, 0, 0, 2], port)));
    rx.add_user("bob@example.test", "pw");
    // The best MX refuses connections; the second is the receiving mta.
    dns.mx("example.test", 10, "mx1.example.test");
    dns.mx("example.test", 20, "mx2.example.test");
    dns.a("mx1.example.test", Ipv4Addr::new(127, 0, 0, 3));
    dns.a("mx2.example.test", Ipv4Addr::new(127, 0, 0, 2));
    let tx = sender(&dns, port, &[]);
    let _rx = rx.start();
    let out = tx.start();
    send(&tx, &["bob@example.test"], "via mx2");
    let got = wait_messages(&rx.maildir("bob@example.test"), 1);
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("Subject: via mx2"), "{text}");
    assert!(text.contains("\n.line starting with a dot\n"), "{text}");
    assert!(text.contains("with ESMTPS"), "the receiver saw no TLS: {text}");
    out.wait_log("status=sent", Duration::from_secs(10));
    let log = out.log();
    assert!(
        log.contains(&format!("relay=mx2.example.test[127.0.0.2]:{port}")) && log.contains("tls=TLSv1.3"),
        "{log}"
    );
    assert!(
        log.contains("mx1.example.test[127.0.0.3]"),
        "mx1 was not tried first: {log}"
    );
    wait_until("the sender's queue to empty", Duration::from_secs(10), || {
        queue_is_empty(&tx)
    });
}

#[test]
fn implicit_mx_null_mx_nxdomain_and_servfail() {
    let dns = DnsServer::start();
    let port = greyd_tests::free_port();
    // implicit.test has no MX, only an address: Postfix's smtp-sink listens there.
    dns.a("implicit.test", Ipv4Addr::new(127, 0, 0, 4));
    dns.null_mx("nullmx.test");
    dns.a("nullmx.test", Ipv4Addr::new(127, 0, 0, 4));
    dns.break_name("broken.test", Broken::ServFail);
    let sink = Daemon::spawn({
        let mut c = Command::new("/usr/sbin/smtp-sink");
        c.args(["-u", "nobody", &format!("127.0.0.4:{port}"), "10"]);
        c
    });
    greyd_tests::wait_port(SocketAddr::from(([127, 0, 0, 4], port)), Duration::from_secs(5));
    let tx = sender(&dns, port, &[]);
    let out = tx.start();
    send(
        &tx,
        &["a@implicit.test", "b@nullmx.test", "c@nosuch.test", "d@broken.test"],
        "four fates",
    );
    out.wait_log("to=<a@implicit.test>", Duration::from_secs(15));
    out.wait_log("to=<d@broken.test>", Duration::from_secs(15));
    let log = out.log();
    let line = |rcpt: &str| {
        log.lines()
            .find(|l| l.contains(&format!("to=<{rcpt}>, relay=")))
            .unwrap_or_else(|| panic!("no line for {rcpt}: {log}"))
            .to_string()
    };
    let implicit = line("a@implicit.test");
    assert!(
        implicit.contains(&format!("relay=implicit.test[127.0.0.4]:{port}")) && implicit.contains("status=sent (250"),
        "{implicit}"
    );
    let null = line("b@nullmx.test");
    assert!(
        null.contains("relay=none") && null.contains("dsn=5.1.10") && null.contains("status=bounced"),
        "{null}"
    );
    let nx = line("c@nosuch.test");
    assert!(nx.contains("dsn=5.1.2") && nx.contains("status=bounced"), "{nx}");
    let sf = line("d@broken.test");
    assert!(sf.contains("dsn=4.4.3") && sf.contains("status=deferred"), "{sf}");
    // One bounce for both permanent failures, back in alice's mailbox.
    let bounce = String::from_utf8_lossy(&wait_messages(&tx.maildir(SENDER), 1)[0]).into_owned();
    assert!(
        bounce.contains("b@nullmx.test") && bounce.contains("null MX"),
        "{bounce}"
    );
    assert!(
        bounce.contains("c@nosuch.test") && bounce.contains("not found"),
        "{bounce}"
    );
    assert!(!bounce.contains("a@implicit.test>:"), "{bounce}");
    let q = run_ok(&mut tx.command("mailq"));
    assert!(
        q.contains("d@broken.test") && q.contains("temporary DNS failure"),
        "{q}"
    );
    drop(sink);
}

fn defer_first_then_accept(conn: usize, cmd: &str) -> Act {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static TRIES: AtomicUsize = AtomicUsize::new(0);
    match cmd {
        c if c.starts_with("RCPT TO:<LATER@") && TRIES.fetch_add(1, Ordering::SeqCst) == 0 => {
            Act::Reply("451 4.7.1 greylisted, try again")
        }
        c if c.starts_with("RCPT TO:<NOBODY@") => Act::Reply("550 5.1.1 <nobody@peer.test>: no such user"),
        c => accept_all(conn, c),
    }
}

#[test]
fn deferred_then_sent_on_retry_and_5xx_bounced() {
    let dns = DnsServer::start();
    let port = greyd_tests::free_port();
    dns.mx("peer.test", 10, "mx.peer.test");
    dns.a("mx.peer.test", Ipv4Addr::new(127, 0, 0, 5));
    let peer = Peer::start(SocketAddr::from(([127, 0, 0, 5], port)), defer_first_then_accept);
    let tx = sender(&dns, port, &[("retry_interval", "1s"), ("max_backoff", "2s")]);
    let out = tx.start();
    send(&tx, &["later@peer.test", "nobody@peer.test"], "retry me");
    out.wait_log("to=<later@peer.test>, relay=", Duration::from_secs(10));
    wait_until("the retry to deliver", Duration::from_secs(20), || peer.messages() == 1);
    let log = out.log();
    assert!(
        log.contains("dsn=4.7.1, status=deferred (451 4.7.1 greylisted"),
        "{log}"
    );
    assert!(log.contains("dsn=5.1.1, status=bounced (550 5.1.1"), "{log}");
    // The peer counts the message at its end of DATA, before our 250 is logged:
    // wait for the sent line itself (the deferred line names the relay too).
    out.wait_log("status=sent (250 2.0.0 queued as X1)", Duration::from_secs(5));
    // Pipelined: the whole envelope was sent before the first reply was read.
    let seen = peer.seen();
    assert!(
        seen.iter()
            .any(|l| l.starts_with("MAIL FROM:<alice@sender.test> SIZE=")),
        "{seen:?}"
    );
    let bounce = String::from_utf8_lossy(&wait_messages(&tx.maildir(SENDER), 1)[0]).into_owned();
    assert!(
        bounce.contains("nobody@peer.test") && bounce.contains("550 5.1.1"),
        "{bounce}"
    );
    assert!(!bounce.contains("later@peer.test>:"), "{bounce}");
    wait_until("the queue to empty", Duration::from_secs(10), || queue_is_empty(&tx));
}

#[test]
fn bounced_when_the_queue_lifetime_ends() {
    let (_dns, _peer, tx) = scripted_host(
        "busy.test",
        6,
        always_later,
        &[("retry_interval", "1s"), ("max_backoff", "1s"), ("lifetime", "3s")],
    );
    let out = tx.start();
    send(&tx, &["x@busy.test"], "too late");
    let bounce = String::from_utf8_lossy(&wait_messages(&tx.maildir(SENDER), 1)[0]).into_owned();
    assert!(
        bounce.contains("x@busy.test") && bounce.contains("expired after 3s"),
        "{bounce}"
    );
    assert!(bounce.contains("450 4.2.0 mailbox busy"), "{bounce}");
    assert!(out.log().contains("status=expired"), "{}", out.log());
}
fn stall_at_end_of_data_once(conn: usize, cmd: &str) -> Act {
    match cmd {
        "." if conn == 0 => Act::Stall,
        c => accept_all(conn, c),
    }
}
#[test]
fn kill_9_during_delivery_loses_nothing() {
    let (_dns, peer, tx) = scripted_host(
        "slow.test",
        7,
        stall_at_end_of_data_once,
        &[("retry_interval", "1s"), ("max_backoff", "1s")],
    );
    let mut out = tx.start();
    send(&tx, &["y@slow.test"], "crash test");
    wait_until("the message data to arrive", Duration::from_secs(10), || {
        peer.messages() == 1
    });
    out.kill9();
    let again = tx.start();
    again.wait_log("status=sent", Duration::from_secs(15));
    wait_until("the queue to empty", Duration::from_secs(10), || queue_is_empty(&tx));
    // The stalled copy may count as delivered by the peer: at most one duplicate.
    assert_eq!(peer.messages(), 2);
}

#[test]
fn smarthost_with_auth_after_starttls() {
    let dns = DnsServer::start();
    let rx = MtaSetup::new();
    rx.add_user("relay@example.test", "relay-pw");
    let tx = sender(&dns, 25, &[]);
    let password = tx.root().join("smarthost.pw");
    std::fs::write(&password, "relay-pw\n").unwrap();
    tx.edit(
        "[outbound]\n",
        &format!(
            "[outbound]\nsmarthost = \"{}\"\nsmarthost_user = \"relay@example.test\"\nsmarthost_password_file = \"{}\"\n",
            rx.submission,
            password.display()
        ),
    );
    let rx_daemon = rx.start();
    let out = tx.start();
    send(&tx, &["someone@far-away.test"], "through the smarthost");
    out.wait_log("status=sent", Duration::from_secs(15));
    let log = out.log();
    assert!(
        log.contains(&format!("relay={}[", rx.submission.ip())) && log.contains("tls=TLSv1.3"),
        "{log}"
    );
    rx_daemon.wait_log("auth=relay@example.test", Duration::from_secs(5));
}

fn drop_at_end_of_data_once(conn: usize, cmd: &str) -> Act {
    match cmd {
        "." if conn == 0 => Act::Drop,
        c => accept_all(conn, c),
    }
}

#[test]
fn connection_lost_mid_data_is_deferred_and_retried() {
    let (_dns, peer, tx) = scripted_host(
        "flaky.test",
        8,
        drop_at_end_of_data_once,
        &[("retry_interval", "1s"), ("max_backoff", "1s")],
    );
    let out = tx.start();
    send(&tx, &["z@flaky.test"], "dropped");
    out.wait_log("status=sent", Duration::from_secs(15));
    let log = out.log();
    assert!(
        log.contains("dsn=4.4.2, status=deferred (lost connection with flaky.test"),
        "{log}"
    );
    assert_eq!(peer.messages(), 2);
    wait_until("the queue to empty", Duration::from_secs(10), || queue_is_empty(&tx));
}

#[test]
fn queue_commands_hold_release_delete_and_sendmail_q() {
    let dns = DnsServer::start();
    let port = greyd_tests::free_port();
    dns.a("later.test", Ipv4Addr::new(127, 0, 0, 9));
    let tx = sender(&dns, port, &[("retry_interval", "1h")]);
    tx.edit("dead_destination = \"5m\"", "dead_destination = \"0s\"");
    let out = tx.start();
    // Nobody listens yet: all three are deferred, next try in an hour.
    for rcpt in ["one@later.test", "two@later.test", "three@later.test"] {
        send(&tx, &[rcpt], rcpt);
        out.wait_log(&format!("to=<{rcpt}>, relay=later.test"), Duration::from_secs(10));
    }
    let (one, two, three) = (
        queue_id(&tx, "one@later.test"),
        queue_id(&tx, "two@later.test"),
        queue_id(&tx, "three@later.test"),
    );
    let q = run_ok(&mut tx.command("mailq"));
    assert!(
        q.starts_with("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"),
        "{q}"
    );
    assert!(
        q.contains("alice@sender.test\n") && q.contains("Connection refused") && q.contains("Requests."),
        "{q}"
    );
    let show = run_ok(tx.command("mtactl").args(["queue", "show", &one]));
    assert!(
        show.contains("\"state\": \"deferred\"") && show.contains("Subject: one@later.test"),
        "{show}"
    );
    run_ok(tx.command("mtactl").args(["queue", "hold", &one]));
    assert!(run_ok(&mut tx.command("mailq")).contains(&format!("{one}!")));
    run_ok(tx.command("mtactl").args(["queue", "delete", &two]));
    assert!(!run_ok(&mut tx.command("mailq")).contains(&two));
    let peer = Peer::start(SocketAddr::from(([127, 0, 0, 9], port)), accept_all);
    // sendmail -q runs the queue now: the held message stays.
    run_ok(tx.command("sendmail").arg("-q"));
    wait_until("three to be sent", Duration::from_secs(10), || peer.messages() == 1);
    assert!(!run_ok(&mut tx.command("mailq")).contains(&three));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(peer.messages(), 1, "the held message was sent");
    run_ok(tx.command("mtactl").args(["queue", "release", &one]));
    wait_until("one to be sent after release", Duration::from_secs(10), || {
        peer.messages() == 2
    });
    wait_until("the queue to empty", Duration::from_secs(10), || queue_is_empty(&tx));
    let unknown = tx
        .command("mtactl")
        .args(["queue", "retry", "NOSUCHID"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
}

#[test]
fn delivered_to_peer_is_whitelisted_in_greyd() {
    let dns = DnsServer::start();
    let port = greyd_tests::free_port();
    dns.a("friend.test", Ipv4Addr::new(127, 0, 0, 10));
    let greyd_dir = tempfile::tempdir().unwrap();
    let greyd = greyd_tests::greyd::Greyd::start(greyd_dir.path(), &["--firewall", "none"]);
    greyd_tests::greyd::eventually("greyd's control socket", Duration::from_secs(10), || {
        greyd.control_path().exists()
    });
    let dump = r#"{"op":"dump","keys":["127.0.0.10"]}"#;
    assert!(!greyd.control(dump).contains("127.0.0.10"));
    let peer = Peer::start(SocketAddr::from(([127, 0, 0, 10], port)), accept_all);
    let tx = sender(&dns, port, &[]);
    tx.edit(
        "[outbound]\n",
        &format!("[outbound]\ngreyd_control = \"{}\"\n", greyd.control_path().display()),
    );
    let _out = tx.start();
    send(&tx, &["pal@friend.test"], "hello friend");
    wait_until("the delivery", Duration::from_secs(10), || peer.messages() == 1);
    greyd_tests::greyd::eventually("greyd to whitelist the peer", Duration::from_secs(10), || {
        greyd.control(dump).contains("127.0.0.10")
    });
}
