//! greydb as an administrator uses it: through a running greyd's control
//! socket and directly on the database file, in spamdb's formats and JSON.

use std::process::Command;

use greyd_tests::bin;
use greyd_tests::greyd::{Greyd, attempt};

fn greydb_file(db: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("greydb"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn add_list_and_delete_through_running_greyd() {
    let dir = tempfile::tempdir().unwrap();
    let up = greyd_tests::greyd::Upstream::start();
    let g = Greyd::start(dir.path(), &["-S", "0", "--upstream", &up.addr.to_string()]);
    g.greydb(&["-a", "127.0.50.1", "::1"]);
    g.greydb(&["-t", "-a", "127.0.50.2"]);
    g.greydb(&["-T", "-a", "spamtrap@here.example"]);
    attempt(&g, "127.0.50.3", "a@b.example", "c@here.example");

    let all = g.greydb(&[]);
    let kinds: Vec<&str> = all.lines().map(|l| l.split('|').next().unwrap()).collect();
    assert_eq!(kinds, ["WHITE", "WHITE", "GREY", "TRAPPED", "SPAMTRAP"], "{all}");
    let white = all.lines().find(|l| l.starts_with("WHITE|127.0.50.1|")).unwrap();
    assert_eq!(
        white.split('|').count(),
        9,
        "WHITE|ip|||first|pass|expire|bcount|pcount: {white}"
    );
    let grey = all.lines().find(|l| l.starts_with("GREY|")).unwrap();
    assert_eq!(grey.split('|').count(), 10, "{grey}");
    assert!(
        grey.starts_with("GREY|127.0.50.3|client.example|<a@b.example>|<c@here.example>|"),
        "paths as sent, brackets included, as spamdb prints them: {grey}"
    );

    // A whitelisted-by-hand source goes straight to the MTA.
    let (_c, banner) = g.smtp_from("127.0.50.1");
    assert_eq!(banner.text(), "upstream ready");
    up.next();

    // JSON output carries the same records.
    let json = g.greydb(&["--json", "127.0.50.3"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["helo"].as_str(), v["to"].as_str()),
        (Some("GREY"), Some("client.example"), Some("<c@here.example>"))
    );

    g.greydb(&["-d", "127.0.50.1"]);
    g.greydb(&["-t", "-d", "127.0.50.2"]);
    g.greydb(&["-T", "-d", "spamtrap@here.example"]);
    g.greydb(&["-G", "-d", "127.0.50.3|client.example|<a@b.example>|<c@here.example>"]);
    assert_eq!(
        g.greydb(&[])
            .lines()
            .map(|l| l.split('|').next().unwrap())
            .collect::<Vec<_>>(),
        ["WHITE"]
    );
    // Deleted from the whitelist: greylisted again instead of passed.
    let (_c, banner) = g.smtp_from("127.0.50.1");
    assert!(banner.text().contains("spamd"), "{banner:?}");
}

#[test]
fn direct_file_mode_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("greyd.db");
    let (ok, _, err) = greydb_file(&db, &[]);
    assert!(!ok && err.contains("no database"), "{err}");
    // Create the file with greyd once, then work on it directly.
    let mut g = Greyd::start(dir.path(), &["--firewall", "none"]);
    g.daemon.terminate();
    let (ok, _, err) = greydb_file(&db, &["-a", "192.0.2.1", "2001:db8::1"]);
    assert!(ok, "{err}");
    let (_, out, _) = greydb_file(&db, &["2001:db8::1"]);
    assert!(out.starts_with("WHITE|2001:db8::1|||"), "{out}");
    let (ok, _, err) = greydb_file(&db, &["-a", "not-an-ip"]);
    assert!(!ok && err.contains("not an IP address"), "{err}");
    let (_, out, _) = greydb_file(&db, &[]);
    assert_eq!(out.lines().count(), 2, "a bad key changed nothing: {out}");
    let (ok, _, err) = greydb_file(&db, &["-T", "-a", "no-at-sign"]);
    assert!(!ok && err.contains("not an email address"), "{err}");
    let (ok, _, err) = greydb_file(&db, &["-G", "-a", "1.2.3.4"]);
    assert!(!ok && err.contains("-d"), "-G needs -d: {err}");
    // A running greyd started afterwards sees the changes.
    g.restart();
    assert!(g.greydb(&[]).contains("WHITE|192.0.2.1|||"));
}
