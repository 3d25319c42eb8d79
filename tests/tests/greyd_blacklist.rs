//! Blacklisted and trapped sources: stuttered dialogue, the list's message
//! with the client's address, 450 or 550, and the maxblack limit.

use std::io::Read;
use std::time::{Duration, Instant};

use greyd_tests::greyd::Greyd;

const LIST: &str = r#"{"op":"load_list","name":"uatraps","kind":"black","message":"Your address %A is listed at uatraps\nSee the list's site","entries":["127.0.20.0/24","127.0.21.7/32"]}"#;

#[test]
fn blacklisted_source_is_stuttered_one_byte_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let g = Greyd::start(dir.path(), &["--firewall", "none", "-s", "1"]);
    assert!(g.control(LIST).contains("\"changed\":2"));
    let stream = greyd_tests::connect_from("127.0.20.5".parse().unwrap(), g.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    let mut r = &stream;
    while got.len() < 4 {
        r.read_exact(&mut byte).unwrap();
        got.push(byte[0]);
    }
    let elapsed = started.elapsed();
    assert_eq!(got, b"220 ");
    // Byte k leaves after k stutter intervals: four bytes take at least three seconds.
    assert!(elapsed >= Duration::from_millis(2900), "4 bytes arrived in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(8), "4 bytes took {elapsed:?}");
}

#[test]
fn greylisted_source_is_stuttered_only_at_first() {
    let dir = tempfile::tempdir().unwrap();
    let g = Greyd::start(dir.path(), &["--firewall", "none", "-s", "1", "-S", "2"]);
    let started = Instant::now();
    let (mut c, banner) = g.smtp_from("127.0.22.1");
    assert_eq!(banner.code, 220);
    let banner_time = started.elapsed();
    assert!(
        banner_time >= Duration::from_secs(2),
        "banner stuttered for the first -S seconds: {banner_time:?}"
    );
    let t = Instant::now();
    c.cmd("HELO h.example").unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "no stutter after -S seconds: {:?}",
        t.elapsed()
    );
}

#[test]
fn blacklisted_dialogue_ends_with_list_message() {
    let dir = tempfile::tempdir().unwrap();
    let g = Greyd::start(dir.path(), &["--firewall", "none", "-s", "0"]);
    g.control(LIST);
    let (mut c, banner) = g.smtp_from("127.0.21.7");
    assert_eq!(banner.code, 220);
    assert_eq!(c.cmd("EHLO spammer.example").unwrap().code, 250);
    assert_eq!(c.cmd("MAIL FROM:<s@spammer.example>").unwrap().code, 250);
    assert_eq!(c.cmd("RCPT TO:<v@here.example>").unwrap().code, 250);
    assert_eq!(c.cmd("DATA").unwrap().code, 354);
    c.send_raw(b"Subject: buy\r\n\r\nnow\r\n").unwrap();
    let reply = c.cmd(".").unwrap();
    assert_eq!(reply.code, 450);
    assert_eq!(
        reply.lines,
        vec!["Your address 127.0.21.7 is listed at uatraps", "See the list's site"]
    );
    assert!(c.read_to_end().unwrap().is_empty(), "greyd hangs up after the reply");
    assert!(g.greydb(&[]).is_empty(), "blacklisted tuples are not greylisted");
    g.daemon
        .wait_log("127.0.21.7: disconnected after", Duration::from_secs(5));
    assert!(g.daemon.log().contains("lists: uatraps"), "the log names the list");
}

#[test]
fn dash_5_answers_550_and_lists_can_be_replaced_and_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let g = Greyd::start(dir.path(), &["--firewall", "none", "-s", "0", "-5"]);
    g.control(LIST);
    let black_code = |ip: &str| {
        let (mut c, _) = g.smtp_from(ip);
        c.cmd("HELO x.example").unwrap();
        c.cmd("MAIL FROM:<a@x.example>").unwrap();
        c.cmd("RCPT TO:<b@y.example>").unwrap();
        match c.cmd("DATA").unwrap().code {
            354 => c.cmd(".").unwrap().code,
            other => other,
        }
    };
    assert_eq!(black_code("127.0.20.1"), 550);
    // Replacing the list with other entries frees the old ones at once.
    g.control(r#"{"op":"load_list","name":"uatraps","kind":"black","message":"x","entries":["127.0.23.0/24"]}"#);
    assert_eq!(black_code("127.0.20.1"), 451, "no longer listed: greylisted");
    assert_eq!(black_code("127.0.23.1"), 550);
    assert!(
        g.control(r#"{"op":"drop_list","name":"uatraps"}"#)
            .contains("\"changed\":1")
    );
    assert_eq!(black_code("127.0.23.1"), 451);
}

#[test]
fn beyond_maxblack_blacklisted_sources_are_not_stuttered() {
    let dir = tempfile::tempdir().unwrap();
    let g = Greyd::start(dir.path(), &["--firewall", "none", "-s", "1", "-c", "10", "-B", "1"]);
    g.control(LIST);
    // The first blacklisted connection takes the only stutter slot...
    let _slow = greyd_tests::connect_from("127.0.20.1".parse().unwrap(), g.addr()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // ...so the second gets its banner at once.
    let t = Instant::now();
    let (_c, banner) = g.smtp_from("127.0.20.2");
    assert_eq!(banner.code, 220);
    assert!(t.elapsed() < Duration::from_secs(2), "banner took {:?}", t.elapsed());
}
