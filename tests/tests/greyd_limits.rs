//! Connection limits in proxy mode: `maxcon` and `max_per_source` bound the
//! tarpit only, passed sources always reach the MTA, one address cannot
//! fill the tarpit, and a burst never runs past `maxcon`.

use std::path::Path;
use std::time::Duration;

use greyd_tests::greyd::{Greyd, Upstream, eventually};
use greyd_tests::{SmtpClient, connect_from};

/// greyd in proxy mode without stutter, `config` written to its TOML file.
fn greyd(dir: &Path, up: &Upstream, config: &str, extra: &[&str]) -> Greyd {
    std::fs::write(dir.join("greyd.toml"), config).unwrap();
    let toml = dir.join("greyd.toml").display().to_string();
    let upstream = up.addr.to_string();
    let mut args = vec!["--config", &toml, "-s", "0", "-S", "0", "--upstream", &upstream];
    args.extend_from_slice(extra);
    Greyd::start(dir, &args)
}

const MAXCON_REPLY: &str = "4.3.2 Too many connections, try again later";
const SOURCE_REPLY: &str = "4.7.0 Too many connections from your address, try again later";

#[test]
fn passed_sources_reach_the_mta_while_the_tarpit_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start();
    let g = greyd(dir.path(), &up, "nospamd = [\"127.0.73.0/24\"]\n", &["-c", "4"]);
    g.greydb(&["-a", "127.0.70.50"]);
    let held: Vec<(SmtpClient, _)> = (1..=4).map(|i| g.smtp_from(&format!("127.0.70.{i}"))).collect();
    assert!(held.iter().all(|(_, b)| b.code == 220), "four tarpit slots");
    let (_c, over) = g.smtp_from("127.0.70.5");
    assert_eq!((over.code, over.text().as_str()), (421, MAXCON_REPLY));
    // WHITE and nospamd sources are not counted and not refused.
    for ip in ["127.0.70.50", "127.0.73.1"] {
        for _ in 0..3 {
            let (_c, banner) = g.smtp_from(ip);
            assert_eq!(banner.text(), "upstream ready", "{ip} passed with the tarpit full");
            assert_eq!(up.next().src.ip().to_string(), ip);
        }
    }
    g.daemon.wait_log(
        "127.0.70.5: refused, 4 tarpit connections open (maxcon)",
        Duration::from_secs(5),
    );
}

#[test]
fn one_source_cannot_hold_more_than_its_share() {
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start();
    let g = greyd(dir.path(), &up, "max_per_source = 3\n", &["-c", "50"]);
    let mut held: Vec<(SmtpClient, _)> = (0..3).map(|_| g.smtp_from("127.0.71.1")).collect();
    assert!(held.iter().all(|(_, b)| b.code == 220));
    let (mut c, over) = g.smtp_from("127.0.71.1");
    assert_eq!((over.code, over.text().as_str()), (421, SOURCE_REPLY));
    assert!(c.read_to_end().unwrap().is_empty(), "closed after the 421");
    // Other sources are not affected.
    assert_eq!(g.smtp_from("127.0.71.2").1.code, 220);
    // A slot given back (the client quits) is free again.
    let (mut first, _) = held.remove(0);
    assert_eq!(first.cmd("QUIT").unwrap().code, 221);
    eventually("the freed slot", Duration::from_secs(5), || {
        g.smtp_from("127.0.71.1").1.code == 220
    });
}

#[test]
fn a_burst_of_connections_never_exceeds_maxcon() {
    const MAXCON: usize = 20;
    const BURST: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start();
    let g = greyd(dir.path(), &up, "max_per_source = 1000\n", &["-c", &MAXCON.to_string()]);
    // All connections are made (the kernel completes them) before any banner is read.
    let mut clients: Vec<SmtpClient> = (0..BURST)
        .map(|i| {
            let from = format!("127.0.72.{}", 1 + i % 250).parse().unwrap();
            SmtpClient::new(connect_from(from, g.addr()).unwrap(), Duration::from_secs(10))
        })
        .collect();
    // Every client stays connected until all are counted.
    let codes: Vec<u16> = clients.iter_mut().map(|c| c.reply().unwrap().code).collect();
    let served = codes.iter().filter(|&&c| c == 220).count();
    let refused = codes.iter().filter(|&&c| c == 421).count();
    assert_eq!((served, refused), (MAXCON, BURST - MAXCON), "{codes:?}");
}
