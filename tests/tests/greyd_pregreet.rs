//! Pregreet detection (postscreen's idea): a client that sends before
//! greyd's banner has ended is trapped like a spamtrap hit, or only logged
//! with `pregreet = "log"`. greyd stutters the first 2 s of the banner
//! (`-s 1 -S 2`), so a client that writes on connect is always early.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use greyd_tests::connect_from;
use greyd_tests::greyd::Greyd;

const STUTTER: &[&str] = &["--firewall", "none", "-s", "1", "-S", "2"];

/// Connect from `ip` and write `HELO x` at once, before the banner; read the banner after.
fn talk_first(g: &Greyd, ip: &str) -> TcpStream {
    let mut s = connect_from(ip.parse().unwrap(), g.addr()).unwrap();
    s.write_all(b"HELO x\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut banner = Vec::new();
    let mut byte = [0u8; 1];
    while !banner.ends_with(b"\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "banner cut short");
        banner.push(byte[0]);
    }
    assert!(banner.starts_with(b"220 "), "{banner:?}");
    s
}

fn trapped(g: &Greyd) -> Vec<String> {
    g.greydb(&[])
        .lines()
        .filter(|l| l.starts_with("TRAPPED|"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_client_that_talks_before_the_banner_is_trapped() {
    let dir = tempfile::tempdir().unwrap();
    let g = Greyd::start(dir.path(), STUTTER);
    let _early = talk_first(&g, "127.0.31.1");
    g.daemon
        .wait_log("127.0.31.1: trapped (pregreet)", Duration::from_secs(10));
    let traps = trapped(&g);
    assert_eq!(traps.len(), 1, "{traps:?}");
    let fields: Vec<&str> = traps[0].split('|').collect();
    assert_eq!(fields[1], "127.0.31.1");
    let expire = std::time::UNIX_EPOCH + Duration::from_secs(fields[2].parse().unwrap());
    let left = expire.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(
        left > Duration::from_secs(86400 - 60),
        "trapped for 24 hours, {left:?} left"
    );

    // A client that waits for the banner is greylisted as usual, not trapped.
    let (mut c, banner) = g.smtp_from("127.0.31.2");
    assert_eq!(banner.code, 220);
    assert_eq!(c.cmd("HELO h.example").unwrap().code, 250);
    assert_eq!(trapped(&g).len(), 1, "the patient client is not trapped");
}

#[test]
fn pregreet_log_only_logs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("greyd.toml");
    std::fs::write(&config, "pregreet = \"log\"\n").unwrap();
    let mut args = STUTTER.to_vec();
    let config = config.display().to_string();
    args.extend(["--config", &config]);
    let g = Greyd::start(dir.path(), &args);
    let _early = talk_first(&g, "127.0.31.3");
    g.daemon.wait_log(
        "127.0.31.3: pregreet: sent before the banner ended (pregreet = log, not trapped)",
        Duration::from_secs(10),
    );
    assert_eq!(trapped(&g), Vec::<String>::new());
    assert!(!g.daemon.log().contains("trapped (pregreet)"));
}
