//! The greylisting cycle end to end: unknown source greylisted, retried too
//! soon, retried after the pass time and whitelisted, then passed to the MTA
//! with a PROXY v2 header carrying its real address.

use std::time::Duration;

use greyd_tests::greyd::{Greyd, Upstream, attempt, eventually};

#[test]
fn greylist_then_whitelist_then_proxied_with_real_source() {
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start();
    let g = Greyd::start(
        dir.path(),
        &["-G", "2s:1h:1d", "-S", "0", "--upstream", &up.addr.to_string()],
    );

    // First attempt: greylisted, DATA refused with spamd's words.
    let (mut c, banner) = g.smtp_from("127.0.10.1");
    assert_eq!(banner.code, 220);
    assert!(
        banner.text().contains("ESMTP spamd IP-based SPAM blocker"),
        "{banner:?}"
    );
    c.cmd("EHLO mx.sender.example").unwrap();
    c.cmd("MAIL FROM:<alice@sender.example>").unwrap();
    assert_eq!(c.cmd("RCPT TO:<bob@here.example>").unwrap().code, 250);
    let data = c.cmd("DATA").unwrap();
    assert_eq!(
        (data.code, data.text().as_str()),
        (451, "Temporary failure, please try again later.")
    );
    let grey = g.greydb(&[]);
    assert!(
        grey.contains("GREY|127.0.10.1|mx.sender.example|<alice@sender.example>|<bob@here.example>|"),
        "greydb shows the tuple: {grey}"
    );

    // A retry inside the pass time is still greylisted and counted as blocked.
    let (mut c, _) = g.smtp_from("127.0.10.1");
    c.cmd("EHLO mx.sender.example").unwrap();
    c.cmd("MAIL FROM:<alice@sender.example>").unwrap();
    c.cmd("RCPT TO:<bob@here.example>").unwrap();
    assert_eq!(c.cmd("DATA").unwrap().code, 451);
    let line = g.greydb(&["127.0.10.1"]);
    let fields: Vec<&str> = line.trim().split('|').collect();
    assert_eq!(
        (fields[0], fields[8], fields[9]),
        ("GREY", "2", "0"),
        "bcount 2 after the early retry: {line}"
    );

    // A different source on the same loopback is unaffected.
    assert_eq!(
        attempt(&g, "127.0.10.2", "alice@sender.example", "bob@here.example"),
        451
    );

    // After the pass time the same tuple promotes the source at once.
    std::thread::sleep(Duration::from_millis(2100));
    let (mut c, _) = g.smtp_from("127.0.10.1");
    c.cmd("EHLO mx.sender.example").unwrap();
    c.cmd("MAIL FROM:<alice@sender.example>").unwrap();
    c.cmd("RCPT TO:<bob@here.example>").unwrap();
    c.cmd("DATA").unwrap();
    let white = g.greydb(&["127.0.10.1"]);
    assert!(white.starts_with("WHITE|127.0.10.1|||"), "{white}");
    assert!(
        !white.contains("GREY|"),
        "grey tuples of a whitelisted source are gone: {white}"
    );

    // The next connection goes to the MTA, which learns the real client address.
    let (c, banner) = g.smtp_from("127.0.10.1");
    assert_eq!(banner.text(), "upstream ready");
    let seen = up.next();
    assert_eq!(
        seen.src,
        c.local_addr(),
        "PROXY header carries the client's address and port"
    );
    assert_eq!(
        seen.dst,
        g.addr(),
        "PROXY header carries the address the client connected to"
    );
    drop(c);
    g.daemon
        .wait_log(&format!("passed to {}", up.addr), Duration::from_secs(5));
}

#[test]
fn ipv6_sources_are_greylisted_and_proxied() {
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start();
    let g = Greyd::start(
        dir.path(),
        &[
            "-l",
            "::1",
            "-G",
            "1s:1h:1d",
            "-S",
            "0",
            "--upstream",
            &up.addr.to_string(),
        ],
    );
    let addr: std::net::SocketAddr = format!("[::1]:{}", g.port).parse().unwrap();
    let try_once = || greyd_tests::greyd::attempt_to(&g, "::1", addr, "a@b.example", "c@d.example");
    assert_eq!(try_once(), 451);
    assert!(
        g.greydb(&[])
            .contains("GREY|::1|client.example|<a@b.example>|<c@d.example>|")
    );
    std::thread::sleep(Duration::from_millis(1100));
    try_once();
    assert!(g.greydb(&[]).starts_with("WHITE|::1|||"));
    let (_c, banner) = g.smtp_to("::1", addr);
    assert_eq!(banner.text(), "upstream ready");
    let seen = up.next();
    assert_eq!((seen.src.ip().to_string(), seen.dst), ("::1".to_string(), addr));
}

#[test]
fn state_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start();
    let mut g = Greyd::start(dir.path(), &["-S", "0", "--upstream", &up.addr.to_string()]);
    g.greydb(&["-a", "127.0.11.1"]);
    attempt(&g, "127.0.11.2", "x@y.example", "z@w.example");
    let resp = g.control(
        r#"{"op":"load_list","name":"testlist","kind":"black","message":"go away %A","entries":["127.0.11.3/32"]}"#,
    );
    assert!(resp.contains("\"ok\""), "{resp}");
    let before = g.greydb(&[]);

    g.restart();
    assert_eq!(g.greydb(&[]), before, "database content is the same after a restart");
    let (_c, banner) = g.smtp_from("127.0.11.1");
    assert_eq!(banner.text(), "upstream ready", "whitelisted source still passed");
    up.next();
    let lists = g.control(r#"{"op":"list_lists"}"#);
    assert!(
        lists.contains("\"testlist\"") && lists.contains("\"entries\":1"),
        "{lists}"
    );
}

#[test]
fn expired_entries_disappear() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("greyd.toml"),
        "expire_interval = \"1s\"\ntrapexp = \"2s\"\n",
    )
    .unwrap();
    let config = dir.path().join("greyd.toml").display().to_string();
    let g = Greyd::start(
        dir.path(),
        &["--config", &config, "--firewall", "none", "-G", "1s:2s:3s", "-S", "0"],
    );
    attempt(&g, "127.0.12.1", "a@b.example", "c@d.example");
    g.greydb(&["-a", "127.0.12.2"]);
    g.greydb(&["-t", "-a", "127.0.12.3"]);
    let all = g.greydb(&[]);
    assert_eq!(all.lines().count(), 3, "{all}");
    eventually("grey and trapped entries to expire", Duration::from_secs(10), || {
        let now = g.greydb(&[]);
        !now.contains("GREY|") && !now.contains("TRAPPED|")
    });
    eventually("the white entry to expire", Duration::from_secs(10), || {
        g.greydb(&[]).is_empty()
    });
    g.daemon.wait_log("whitelist entry expired", Duration::from_secs(5));
}

#[test]
fn blacklist_only_mode_passes_unlisted_sources() {
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start();
    let g = Greyd::start(dir.path(), &["-b", "-s", "0", "--upstream", &up.addr.to_string()]);
    g.control(r#"{"op":"load_list","name":"bl","kind":"black","message":"listed","entries":["127.0.13.0/24"]}"#);
    let (_c, banner) = g.smtp_from("127.0.14.1");
    assert_eq!(banner.text(), "upstream ready");
    up.next();
    let (mut c, banner) = g.smtp_from("127.0.13.9");
    assert_eq!(banner.code, 220);
    assert!(
        banner.text().contains("spamd"),
        "listed source is tarpitted: {banner:?}"
    );
    c.cmd("HELO x").unwrap();
    assert!(g.greydb(&[]).is_empty(), "no greylisting in blacklist-only mode");
}
