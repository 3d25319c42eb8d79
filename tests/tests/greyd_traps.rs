//! Greytrapping: spamtrap addresses, the allowed-domains list and the
//! low-priority MX address trap a source for the trap time and give it the
//! blacklist treatment.

use std::net::SocketAddr;

use greyd_tests::greyd::{Greyd, attempt, attempt_to};

/// The DATA outcome of a full attempt: (code of DATA, final reply if 354).
fn black_outcome(g: &Greyd, ip: &str) -> (u16, Option<greyd_tests::Reply>) {
    let (mut c, _) = g.smtp_from(ip);
    c.cmd("HELO h.example").unwrap();
    c.cmd("MAIL FROM:<a@h.example>").unwrap();
    c.cmd("RCPT TO:<someone@here.example>").unwrap();
    let data = c.cmd("DATA").unwrap();
    if data.code == 354 {
        (354, Some(c.cmd(".").unwrap()))
    } else {
        (data.code, None)
    }
}

#[test]
fn mailing_a_spamtrap_traps_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let g = Greyd::start(dir.path(), &["--firewall", "none", "-s", "0", "-S", "0"]);
    g.greydb(&["-T", "-a", "Trap@Here.example"]);
    assert_eq!(g.greydb(&[]), "SPAMTRAP|trap@here.example\n");

    // The trapping connection itself turns black: DATA is taken and refused with the trap message.
    let (mut c, _) = g.smtp_from("127.0.30.1");
    c.cmd("HELO h.example").unwrap();
    c.cmd("MAIL FROM:<a@h.example>").unwrap();
    c.cmd("RCPT TO:<trap@here.example>").unwrap();
    assert_eq!(c.cmd("DATA").unwrap().code, 354);
    let reply = c.cmd(".").unwrap();
    assert_eq!(
        (reply.code, reply.text()),
        (450, "Your address 127.0.30.1 has mailed to spamtraps here".into())
    );

    let db = g.greydb(&["127.0.30.1"]);
    let fields: Vec<&str> = db.trim().split('|').collect();
    assert_eq!((fields[0], fields[1]), ("TRAPPED", "127.0.30.1"), "{db}");
    let expire: i64 = fields[2].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (expire - now - 86400).abs() < 60,
        "trapped for 24 hours: {expire} vs {now}"
    );

    // Later connections get the blacklist treatment from the start.
    let (code, reply) = black_outcome(&g, "127.0.30.1");
    assert_eq!(code, 354);
    assert!(reply.unwrap().text().contains("mailed to spamtraps"));
    // Other sources are unaffected.
    assert_eq!(black_outcome(&g, "127.0.30.2").0, 451);
    g.daemon
        .wait_log("127.0.30.1: trapped (spamtrap)", std::time::Duration::from_secs(5));
    // The tuple keeps the recipient as sent; the spamtrap is still found
    // without brackets and in any case, as spamd's trapcheck dequotes.
    let (mut c, _) = g.smtp_from("127.0.30.3");
    c.cmd("HELO h.example").unwrap();
    c.cmd("MAIL FROM:<a@h.example>").unwrap();
    c.cmd("RCPT TO:TRAP@here.example").unwrap();
    assert_eq!(c.cmd("DATA").unwrap().code, 354, "trapped by the bare address");
    g.daemon.wait_log(
        "127.0.30.3: trapped (spamtrap): <a@h.example> -> TRAP@here.example",
        std::time::Duration::from_secs(5),
    );
}

#[test]
fn recipients_outside_allowed_domains_trap_the_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("allowed"),
        "# our domains\nhere.example\n@exact.example\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("greyd.toml"),
        format!("alloweddomains = \"{}\"\n", dir.path().join("allowed").display()),
    )
    .unwrap();
    let config = dir.path().join("greyd.toml").display().to_string();
    let g = Greyd::start(
        dir.path(),
        &["--config", &config, "--firewall", "none", "-s", "0", "-S", "0"],
    );
    assert_eq!(attempt(&g, "127.0.31.1", "a@x.example", "u@sub.here.example"), 451);
    assert_eq!(attempt(&g, "127.0.31.2", "a@x.example", "u@exact.example"), 451);
    assert_eq!(attempt(&g, "127.0.31.3", "a@x.example", "u@sub.exact.example"), 354);
    assert_eq!(attempt(&g, "127.0.31.4", "a@x.example", "u@elsewhere.example"), 354);
    let db = g.greydb(&[]);
    assert!(
        db.contains("TRAPPED|127.0.31.3|") && db.contains("TRAPPED|127.0.31.4|"),
        "{db}"
    );
    assert!(
        !db.contains("TRAPPED|127.0.31.1|") && !db.contains("TRAPPED|127.0.31.2|"),
        "{db}"
    );
}

#[test]
fn new_tuples_on_the_low_priority_mx_are_trapped() {
    let dir = tempfile::tempdir().unwrap();
    let g = Greyd::start(
        dir.path(),
        &[
            "-l",
            "127.0.0.1",
            "-l",
            "127.0.0.2",
            "-M",
            "127.0.0.2",
            "--firewall",
            "none",
            "-s",
            "0",
            "-S",
            "0",
        ],
    );
    let primary = g.addr();
    let backup: SocketAddr = format!("127.0.0.2:{}", g.port).parse().unwrap();
    // A tuple first seen on the primary MX is only greylisted on the backup.
    assert_eq!(
        attempt_to(&g, "127.0.32.1", primary, "a@x.example", "u@here.example"),
        451
    );
    assert_eq!(
        attempt_to(&g, "127.0.32.1", backup, "a@x.example", "u@here.example"),
        451
    );
    // A spammer that goes straight for the backup MX is trapped.
    assert_eq!(
        attempt_to(&g, "127.0.32.2", backup, "a@x.example", "u@here.example"),
        354
    );
    let db = g.greydb(&[]);
    assert!(db.contains("TRAPPED|127.0.32.2|"), "{db}");
    assert!(!db.contains("TRAPPED|127.0.32.1|"), "{db}");
}
