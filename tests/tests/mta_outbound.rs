//! Outbound delivery end to end: a sending mta resolves through a real DNS
//! server on loopback and delivers to real peers on 127.x addresses (a
//! second mta, Postfix's smtp-sink, scripted SMTP responders), with
//! bounces read back from the sender's mailbox.

use greyd_tests::Daemon;
use greyd_tests::dns::{Broken, DnsServer};
use greyd_tests::mta::{MtaSetup, run_ok, smtp, wait_messages};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SENDER: &str = "alice@sender.test";

/// A sending mta for `sender.test` resolving through `dns`, MX port `port`,
/// loopback allowed to relay; `queue` sets keys of `[queue]` (key, value).
fn sender(dns: &DnsServer, port: u16, queue: &[(&str, &str)]) -> MtaSetup {
    let s = MtaSetup::new();
    s.edit("hostname = \"mx.test\"", "hostname = \"out.sender.test\"");
    s.edit("domains = [\"example.test\"]", "domains = [\"sender.test\"]");
    s.edit("networks = []", "networks = [\"127.0.0.0/8\"]");
    let text = std::fs::read_to_string(&s.config).unwrap();
    let (before, after) = text.split_once("[queue]\n").unwrap();
    let (section, rest) = after.split_once("\n[").unwrap();
    let section: Vec<String> = section
        .lines()
        .map(
            |l| match queue.iter().find(|(k, _)| l.starts_with(&format!("{k} = "))) {
                Some((k, v)) => format!("{k} = \"{v}\""),
                None => l.to_string(),
            },
        )
        .collect();
    std::fs::write(&s.config, format!("{before}[queue]\n{}\n\n[{rest}", section.join("\n"))).unwrap();
    s.use_dns(dns.addr, port);
    s.add_user(SENDER, "pw");
    s
}

/// Submit a message from alice to `rcpts` over SMTP.
fn send(setup: &MtaSetup, rcpts: &[&str], subject: &str) {
    let mut c = smtp(setup.smtp);
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    assert_eq!(c.cmd(&format!("MAIL FROM:<{SENDER}>")).unwrap().code, 250);
    for r in rcpts {
        assert_eq!(c.cmd(&format!("RCPT TO:<{r}>")).unwrap().code, 250, "{r}");
    }
    assert_eq!(c.cmd("DATA").unwrap().code, 354);
    let body = format!(
        "From: <{SENDER}>\r\nTo: <{}>\r\nSubject: {subject}\r\n\r\nhello\r\n..line starting with a dot\r\n.",
        rcpts[0]
    );
    assert_eq!(c.cmd(&body).unwrap().code, 250);
    let _ = c.cmd("QUIT");
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn queue_is_empty(setup: &MtaSetup) -> bool {
    run_ok(&mut setup.command("mailq")).contains("Mail queue is empty")
}

/// What a scripted peer does with one command (`.` stands for the message).
enum Act {
    Reply(&'static str),
    /// Close the connection without a reply.
    Drop,
    /// Never answer.
    Stall,
}

/// A scripted SMTP server: `script(connection number, command)` decides
/// each answer; every command and message it saw is recorded.
struct Peer {
    seen: Arc<Mutex<Vec<String>>>,
}

impl Peer {
    fn start(addr: SocketAddr, script: fn(usize, &str) -> Act) -> Peer {
        let listener = TcpListener::bind(addr).unwrap();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut out) = stream else { return };
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    let mut input = BufReader::new(out.try_clone().unwrap());
                    let _ = out.write_all(b"220 peer.test ESMTP\r\n");
                    let mut line = String::new();
                    // Accepted recipients of the transaction: DATA without any gets 554.
                    let mut accepted = 0;
                    loop {
                        line.clear();
                        if input.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let cmd = line.trim_end().to_string();
                        let upper = cmd.to_ascii_uppercase();
                        let act = if upper.starts_with("EHLO") {
                            Act::Reply("250-peer.test\r\n250-PIPELINING\r\n250 SIZE 100000")
                        } else if upper == "DATA" && accepted == 0 {
                            Act::Reply("554 5.5.1 no valid recipients")
                        } else if upper == "DATA" {
                            log.lock().unwrap().push(cmd);
                            accepted = 0;
                            let _ = out.write_all(b"354 go\r\n");
                            let mut msg = String::new();
                            loop {
                                line.clear();
                                if input.read_line(&mut line).unwrap_or(0) == 0 || line == ".\r\n" {
                                    break;
                                }
                                msg.push_str(&line);
                            }
                            log.lock().unwrap().push(format!("MESSAGE {msg}"));
                            script(n, ".")
                        } else {
                            log.lock().unwrap().push(cmd.clone());
                            let act = script(n, &upper);
                            if upper.starts_with("RCPT") && matches!(act, Act::Reply(r) if r.starts_with('2')) {
                                accepted += 1;
                            }
                            if upper == "RSET" {
                                accepted = 0;
                            }
                            act
                        };
                        match act {
                            Act::Reply(r) => {
                                let _ = out.write_all(format!("{r}\r\n").as_bytes());
                                if upper == "QUIT" {
                                    return;
                                }
                            }
                            Act::Drop => return,
                            Act::Stall => std::thread::sleep(Duration::from_secs(3600)),
                        }
                    }
                });
            }
        });
        Peer { seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn messages(&self) -> usize {
        self.seen().iter().filter(|l| l.starts_with("MESSAGE ")).count()
    }
}

/// A DNS server giving `host` the address 127.0.0.`octet`, a scripted peer
/// there, and a sender using both (`queue` as for `sender`).
fn scripted_host(
    host: &str,
    octet: u8,
    script: fn(usize, &str) -> Act,
    queue: &[(&str, &str)],
) -> (DnsServer, Peer, MtaSetup) {
    let dns = DnsServer::start();
    let port = greyd_tests::free_port();
    dns.a(host, Ipv4Addr::new(127, 0, 0, octet));
    let peer = Peer::start(SocketAddr::from(([127, 0, 0, octet], port)), script);
    let tx = sender(&dns, port, queue);
    (dns, peer, tx)
}

/// The usual answers of a server that takes everything.
fn accept_all(_: usize, cmd: &str) -> Act {
    match cmd {
        "." => Act::Reply("250 2.0.0 queued as X1"),
        "QUIT" => Act::Reply("221 bye"),
        _ => Act::Reply("250 ok"),
    }
}

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
    out.wait_log("to=<later@peer.test>, relay=mx.peer.test", Duration::from_secs(5));
    assert!(
        out.log().contains("status=sent (250 2.0.0 queued as X1)"),
        "{}",
        out.log()
    );
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

fn always_later(conn: usize, cmd: &str) -> Act {
    if cmd.starts_with("RCPT") {
        Act::Reply("450 4.2.0 mailbox busy")
    } else {
        accept_all(conn, cmd)
    }
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

/// The queue id of the message for `rcpt`, from `mtactl queue list --json`.
fn queue_id(setup: &MtaSetup, rcpt: &str) -> String {
    let json = run_ok(setup.command("mtactl").args(["queue", "list", "--json"]));
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["recipients"][0]["address"] == rcpt)
        .unwrap_or_else(|| panic!("{rcpt} not queued: {json}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
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
