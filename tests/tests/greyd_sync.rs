//! Peer sync between real greyd processes over loopback (unicast only):
//! greylist, whitelist and trap state with deletions, and forged, truncated,
//! replayed and self-sent packets rejected.

use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use greyd::sync::{SyncKey, SyncMessage, codec};
use greyd_tests::free_port;
use greyd_tests::greyd::{Greyd, attempt, eventually};

const KEY: &[u8] = b"shared secret between the MX hosts\n";

/// A UDP port free on loopback.
fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Start one peer listening for sync on `me` and sending to `peers`.
fn peer(dir: &Path, me: &str, peers: &[String], extra: &[&str]) -> Greyd {
    std::fs::write(dir.join("greyd.key"), KEY).unwrap();
    std::fs::write(
        dir.join("greyd.toml"),
        format!("sync_key = \"{}\"\n", dir.join("greyd.key").display()),
    )
    .unwrap();
    let config = dir.join("greyd.toml").display().to_string();
    let mut args = vec![
        "--config",
        &config,
        "--firewall",
        "none",
        "-s",
        "0",
        "-S",
        "0",
        "-y",
        me,
    ];
    for p in peers {
        args.extend(["-Y", p.as_str()]);
    }
    args.extend_from_slice(extra);
    Greyd::start_on(dir, free_port(), &args)
}

fn has(g: &Greyd, needle: &str) -> bool {
    g.greydb(&[]).contains(needle)
}

#[test]
fn two_peers_share_grey_white_and_trapped_state_with_deletions() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ya, yb) = (
        format!("127.0.60.1:{}", free_udp()),
        format!("127.0.60.2:{}", free_udp()),
    );
    let a = peer(da.path(), &ya, std::slice::from_ref(&yb), &["-G", "1s:1h:1d"]);
    let b = peer(db.path(), &yb, std::slice::from_ref(&ya), &["-G", "1s:1h:1d"]);

    // A tuple greylisted on A appears on B.
    attempt(&a, "127.0.61.1", "s@x.example", "r@here.example");
    eventually("the grey tuple on B", Duration::from_secs(5), || {
        has(&b, "GREY|127.0.61.1|client.example|<s@x.example>|<r@here.example>|")
    });
    // Promoted on A: whitelisted on B too, and B passes it without greylisting.
    std::thread::sleep(Duration::from_millis(1100));
    attempt(&a, "127.0.61.1", "s@x.example", "r@here.example");
    eventually("the white entry on B", Duration::from_secs(5), || {
        has(&b, "WHITE|127.0.61.1|||")
    });
    assert!(
        !has(&b, "GREY|127.0.61.1|"),
        "B dropped the grey tuples of the whitelisted source"
    );

    // Hand edits travel both ways, deletions included.
    b.greydb(&["-a", "127.0.61.2"]);
    eventually("B's whitelisting on A", Duration::from_secs(5), || {
        has(&a, "WHITE|127.0.61.2|||")
    });
    b.greydb(&["-d", "127.0.61.2"]);
    eventually("B's deletion on A", Duration::from_secs(5), || {
        !has(&a, "WHITE|127.0.61.2|")
    });
    a.greydb(&["-t", "-a", "127.0.61.3"]);
    eventually("the trap on B", Duration::from_secs(5), || {
        has(&b, "TRAPPED|127.0.61.3|")
    });
    a.greydb(&["-t", "-d", "127.0.61.3"]);
    eventually("the untrapping on B", Duration::from_secs(5), || {
        !has(&b, "TRAPPED|127.0.61.3|")
    });

    // A source trapped on B by a spamtrap is trapped on A.
    b.greydb(&["-T", "-a", "trap@here.example"]);
    attempt(&b, "127.0.61.4", "s@x.example", "trap@here.example");
    eventually("the spamtrap hit on A", Duration::from_secs(5), || {
        has(&a, "TRAPPED|127.0.61.4|")
    });
}

#[test]
fn three_peers_all_hear_each_update() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ys: Vec<String> = (0..3).map(|i| format!("127.0.62.{}:{}", i + 1, free_udp())).collect();
    let peers: Vec<Greyd> = (0..3)
        .map(|i| {
            let others: Vec<String> = (0..3).filter(|&j| j != i).map(|j| ys[j].clone()).collect();
            peer(dirs[i].path(), &ys[i], &others, &[])
        })
        .collect();
    attempt(&peers[0], "127.0.63.1", "a@x.example", "b@here.example");
    peers[1].greydb(&["-a", "127.0.63.2"]);
    peers[2].greydb(&["-t", "-a", "127.0.63.3"]);
    for g in &peers {
        eventually("every update on every peer", Duration::from_secs(5), || {
            let db = g.greydb(&[]);
            db.contains("GREY|127.0.63.1|") && db.contains("WHITE|127.0.63.2|") && db.contains("TRAPPED|127.0.63.3|")
        });
    }
}

#[test]
fn forged_truncated_replayed_and_own_packets_are_dropped() {
    let d = tempfile::tempdir().unwrap();
    let port = free_udp();
    let me = format!("127.0.64.1:{port}");
    let g = peer(d.path(), &me, &[], &[]);
    let sender = UdpSocket::bind("127.0.64.9:0").unwrap();
    let key = SyncKey::from_file_content(KEY);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let white = |ip: &str| SyncMessage::White {
        timestamp: now,
        expire: now + 3600,
        ip: ip.parse().unwrap(),
    };

    // A packet signed with another key changes nothing.
    let forged = codec::encode(&[white("127.0.65.1")], 1, &SyncKey::from_file_content(b"wrong key"));
    sender.send_to(&forged, &me).unwrap();
    g.daemon.wait_log("bad HMAC", Duration::from_secs(5));
    // Truncated: cut one byte short of its stated length.
    let good = codec::encode(&[white("127.0.65.2")], 2, &key);
    sender.send_to(&good[..good.len() - 1], &me).unwrap();
    g.daemon
        .wait_log("shorter than its header or its stated length", Duration::from_secs(5));
    // The same packet whole is accepted...
    sender.send_to(&good, &me).unwrap();
    eventually("the genuine white entry", Duration::from_secs(5), || {
        has(&g, "WHITE|127.0.65.2|||")
    });
    // ...and once deleted here, replaying it does not bring it back.
    g.greydb(&["-d", "127.0.65.2"]);
    sender.send_to(&good, &me).unwrap();
    g.daemon.wait_log("replayed", Duration::from_secs(5));
    assert!(!has(&g, "127.0.65.2"), "a replayed packet changed nothing");
    // greyd told to sync to itself hears its own packets and ignores them.
    let d2 = tempfile::tempdir().unwrap();
    let me2 = format!("127.0.64.2:{}", free_udp());
    let looped = peer(d2.path(), &me2, std::slice::from_ref(&me2), &["-v"]);
    looped.greydb(&["-a", "127.0.65.3"]);
    looped.daemon.wait_log("ignored our own packet", Duration::from_secs(5));
    assert!(!has(&g, "127.0.65.1") && !has(&g, "127.0.65.3"), "{}", g.greydb(&[]));
}

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

/// A spamd (or greyd-C) peer sends tuples as spamd stores them, brackets
/// included; the same sender's retry here must find that tuple and pass.
#[test]
fn a_spamd_peers_grey_record_matches_the_local_retry() {
    let d = tempfile::tempdir().unwrap();
    let me = format!("127.0.66.1:{}", free_udp());
    let g = peer(d.path(), &me, &[], &["-G", "1s:1h:1d"]);
    let spamd = UdpSocket::bind("127.0.66.9:0").unwrap();
    let record = SyncMessage::Grey {
        timestamp: unix_now(),
        ip: "127.0.67.1".parse().unwrap(),
        helo: "client.example".into(),
        from: "<s@x.example>".into(),
        to: "<r@here.example>".into(),
    };
    spamd
        .send_to(&codec::encode(&[record], 1, &SyncKey::from_file_content(KEY)), &me)
        .unwrap();
    eventually("the peer's tuple", Duration::from_secs(5), || {
        has(&g, "GREY|127.0.67.1|client.example|<s@x.example>|<r@here.example>|")
    });
    std::thread::sleep(Duration::from_millis(1100));
    attempt(&g, "127.0.67.1", "s@x.example", "r@here.example");
    let db = g.greydb(&[]);
    assert!(
        db.starts_with("WHITE|127.0.67.1|||") && !db.contains("GREY|"),
        "the retry matched the synced tuple and was whitelisted: {db}"
    );
}

/// What we send is what a spamd peer would have stored for the same dialogue.
#[test]
fn outgoing_grey_records_carry_the_paths_as_sent() {
    let d = tempfile::tempdir().unwrap();
    let spamd = UdpSocket::bind("127.0.68.9:0").unwrap();
    spamd.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let target = spamd.local_addr().unwrap().to_string();
    let g = peer(
        d.path(),
        &format!("127.0.68.1:{}", free_udp()),
        std::slice::from_ref(&target),
        &[],
    );
    let (mut c, _) = g.smtp_from("127.0.69.1");
    c.cmd("EHLO client.example").unwrap();
    c.cmd("MAIL FROM: <Sender@X.example> SIZE=100").unwrap();
    c.cmd("RCPT TO:<r@here.example>").unwrap();
    c.cmd("RCPT TO:bare@here.example").unwrap();
    let key = SyncKey::from_file_content(KEY);
    let mut tuples = Vec::new();
    while tuples.len() < 2 {
        let mut buf = [0u8; 2048];
        let (n, _) = spamd.recv_from(&mut buf).expect("a sync packet");
        for m in codec::decode(&buf[..n], &key).unwrap().messages {
            if let SyncMessage::Grey { from, to, .. } = m {
                tuples.push((from, to));
            }
        }
    }
    assert_eq!(
        tuples,
        [
            ("<Sender@X.example>".to_string(), "<r@here.example>".to_string()),
            ("<Sender@X.example>".to_string(), "bare@here.example".to_string()),
        ]
    );
}
