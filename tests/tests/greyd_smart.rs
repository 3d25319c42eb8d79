//! greyd greylisting on evidence beyond spamd's: a retry from another address
//! of an SPF pool passes, an IPv6 sender rotating inside its /64 passes, a
//! source on a DNS allowlist skips greylisting, and the Prometheus endpoint
//! counts what happened. DNS is the loopback server of `greyd_tests::dns`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use greyd_tests::dns::DnsServer;
use greyd_tests::greyd::{Greyd, Upstream, attempt, eventually};
use greyd_tests::netns::{Netns, have_root};
use greyd_tests::{SmtpClient, connect_from, free_port};

/// Start greyd in `dir` with a 2 s pass time, no greylist stutter, `up` as
/// its MTA, and a TOML file of `keys` plus a `[dns]` table pointing at `dns`.
fn start(dir: &Path, dns: &DnsServer, up: &Upstream, keys: &str, extra: &[&str]) -> Greyd {
    let path = dir.join("greyd.toml");
    std::fs::write(&path, format!("{keys}\n[dns]\nnameservers = [\"{}\"]\n", dns.addr)).unwrap();
    let (up, conf) = (up.addr.to_string(), path.display().to_string());
    let mut args = vec!["-G", "2s:1h:1d", "-S", "0", "--upstream", &up, "--config", &conf];
    args.extend(extra);
    Greyd::start(dir, &args)
}

/// The greydb lines for `ip`.
fn entries(g: &Greyd, ip: &str) -> String {
    g.greydb(&[ip])
}

#[test]
fn spf_pool_retry_from_another_address_whitelists_both() {
    let dns = DnsServer::start();
    dns.txt("pool.example", "v=spf1 ip4:127.0.20.0/24 -all");
    dns.txt("single.example", "v=spf1 ip4:127.0.21.1 -all");
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start();
    let g = start(dir.path(), &dns, &up, "", &[]);

    assert_eq!(attempt(&g, "127.0.20.1", "news@pool.example", "bob@here.example"), 451);
    assert_eq!(attempt(&g, "127.0.21.1", "x@single.example", "bob@here.example"), 451);
    std::thread::sleep(Duration::from_millis(2100));

    // The pool's other host retries: both pass SPF for pool.example.
    assert_eq!(attempt(&g, "127.0.20.2", "news@pool.example", "bob@here.example"), 451);
    for ip in ["127.0.20.1", "127.0.20.2"] {
        let e = entries(&g, ip);
        assert!(e.starts_with(&format!("WHITE|{ip}|||")), "{ip} is whitelisted: {e}");
    }
    g.daemon.wait_log(
        "127.0.20.2: whitelisted (spf): <news@pool.example> -> <bob@here.example> retried after the pass time, with 127.0.20.1",
        Duration::from_secs(5),
    );
    let (_c, banner) = g.smtp_from("127.0.20.2");
    assert_eq!(banner.text(), "upstream ready", "the retrying host reaches the MTA");
    up.next();

    // Only the first address passes SPF for single.example: a retry from another stays grey.
    assert_eq!(attempt(&g, "127.0.21.2", "x@single.example", "bob@here.example"), 451);
    let other = entries(&g, "127.0.21.2");
    assert!(
        other.starts_with("GREY|127.0.21.2|client.example|<x@single.example>|<bob@here.example>|"),
        "{other}"
    );
    let first = entries(&g, "127.0.21.1");
    assert!(first.starts_with("GREY|127.0.21.1|"), "{first}");
    assert!(
        !g.greydb(&[]).contains("WHITE|127.0.21."),
        "nothing of single.example is whitelisted"
    );
}

/// One greylisting attempt from `from` to greyd at `to`, inside `ns`; the DATA reply code.
fn attempt_in(ns: &Netns, from: IpAddr, to: SocketAddr) -> u16 {
    let stream = ns.run(move || connect_from(from, to)).join().unwrap().expect("connect");
    let mut c = SmtpClient::new(stream, Duration::from_secs(10));
    assert_eq!(c.reply().unwrap().code, 220);
    c.cmd("EHLO mx6.sender.example").unwrap();
    c.cmd("MAIL FROM:<a@sender.example>").unwrap();
    assert_eq!(c.cmd("RCPT TO:<b@here.example>").unwrap().code, 250);
    c.cmd("DATA").unwrap().code
}

#[test]
fn ipv6_sender_rotating_inside_its_64_passes() {
    if !have_root("ipv6_sender_rotating_inside_its_64_passes") {
        return;
    }
    let ns = Netns::with_addresses(&[
        "2001:db8:1::1/64",
        "2001:db8:1::a/64",
        "2001:db8:1::b/64",
        "2001:db8:2::c/64",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let g = Greyd::start_in(
        Some(&ns),
        dir.path(),
        port,
        &["-l", "2001:db8:1::1", "-G", "2s:1h:1d", "-S", "0", "--firewall", "none"],
    );
    let to: SocketAddr = format!("[2001:db8:1::1]:{port}").parse().unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();

    assert_eq!(attempt_in(&ns, ip("2001:db8:1::a"), to), 451);
    std::thread::sleep(Duration::from_millis(2100));
    // Another /64 is another source.
    assert_eq!(attempt_in(&ns, ip("2001:db8:2::c"), to), 451);
    assert!(g.greydb(&["2001:db8:2::c"]).starts_with("GREY|2001:db8:2::c|"));
    // The same sender retries from another address of its /64.
    assert_eq!(attempt_in(&ns, ip("2001:db8:1::b"), to), 451);
    for addr in ["2001:db8:1::a", "2001:db8:1::b"] {
        let e = g.greydb(&[addr]);
        assert!(e.starts_with(&format!("WHITE|{addr}|||")), "{addr} is whitelisted: {e}");
    }
    assert!(
        !g.greydb(&["2001:db8:2::c"]).contains("WHITE"),
        "the other /64 is still grey"
    );
    drop(g);
}

#[test]
fn dnswl_listed_source_skips_greylisting() {
    let dns = DnsServer::start();
    dns.a("1.30.0.127.list.dnswl.example", "127.0.10.2".parse().unwrap());
    // A reply outside the filter is no listing.
    dns.a("2.30.0.127.list.dnswl.example", "127.0.10.9".parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start();
    let g = start(
        dir.path(),
        &dns,
        &up,
        "dnswl = [\"list.dnswl.example=127.0.[0..255].[1..3]*-5\"]",
        &[],
    );

    let (_c, banner) = g.smtp_from("127.0.30.1");
    assert_eq!(
        banner.text(),
        "upstream ready",
        "a DNSWL-listed source goes straight to the MTA"
    );
    up.next();
    let e = entries(&g, "127.0.30.1");
    assert!(e.starts_with("WHITE|127.0.30.1|||"), "and is whitelisted: {e}");
    g.daemon.wait_log(
        "127.0.30.1: whitelisted: DNSWL score -5 is at or below -1",
        Duration::from_secs(5),
    );

    for unlisted in ["127.0.30.2", "127.0.30.3"] {
        let (_c, banner) = g.smtp_from(unlisted);
        assert!(banner.text().contains("spamd"), "{unlisted} is greylisted: {banner:?}");
        assert!(
            !entries(&g, unlisted).contains("WHITE"),
            "{unlisted} is not whitelisted"
        );
    }
}

/// The value of the metric line `name{labels}` (0 when absent).
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse::<f64>().ok()))
        .map_or(0, |v| v as u64)
}

fn scrape(addr: SocketAddr) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sf", "--max-time", "5", &format!("http://{addr}/metrics")])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn metrics_count_what_the_test_did() {
    let dns = DnsServer::start();
    dns.a("1.40.0.127.list.dnswl.example", "127.0.10.2".parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start();
    let metrics: SocketAddr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let metrics_arg = metrics.to_string();
    let g = start(
        dir.path(),
        &dns,
        &up,
        "dnswl = [\"list.dnswl.example*-5\"]",
        &["-s", "0", "--metrics", &metrics_arg],
    );
    g.greydb(&["-T", "-a", "trap@here.example"]);

    // Two greylisted connections (a tuple each), then a retry that promotes.
    assert_eq!(attempt(&g, "127.0.40.2", "a@sender.example", "b@here.example"), 451);
    assert_eq!(attempt(&g, "127.0.40.3", "a@sender.example", "b@here.example"), 451);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(attempt(&g, "127.0.40.2", "a@sender.example", "b@here.example"), 451);
    // A whitelisted connection, and one on the DNSWL.
    let (_c, banner) = g.smtp_from("127.0.40.2");
    assert_eq!(banner.text(), "upstream ready");
    up.next();
    let (_c, banner) = g.smtp_from("127.0.40.1");
    assert_eq!(banner.text(), "upstream ready");
    up.next();
    // A spamtrap hit (a fourth greylisted connection), then the trapped source comes back.
    attempt(&g, "127.0.40.4", "s@spam.example", "trap@here.example");
    let (mut c, banner) = g.smtp_from("127.0.40.4");
    assert_eq!(banner.code, 220);
    c.cmd("QUIT").unwrap();
    drop(c);

    let text = {
        let mut text = String::new();
        eventually("the trapped connection's end counted", Duration::from_secs(5), || {
            text = scrape(metrics);
            metric(&text, "greyd_tarpit_bytes_total{class=\"trapped\"}") > 0
        });
        text
    };
    let m = |series: &str| metric(&text, series);
    assert_eq!(m("greyd_connections_total{class=\"trapped\"}"), 1, "{text}");
    assert_eq!(m("greyd_connections_total{class=\"grey\"}"), 4, "{text}");
    assert_eq!(m("greyd_connections_total{class=\"white\"}"), 2, "{text}");
    assert_eq!(m("greyd_connections_total{class=\"black\"}"), 0, "{text}");
    assert_eq!(m("greyd_tuples_total"), 4, "{text}");
    assert_eq!(m("greyd_promotions_total{reason=\"retry\"}"), 1, "{text}");
    assert_eq!(m("greyd_promotions_total{reason=\"dnswl\"}"), 1, "{text}");
    assert_eq!(m("greyd_trap_hits_total{reason=\"spamtrap\"}"), 1, "{text}");
    assert!(m("greyd_tarpit_bytes_total{class=\"grey\"}") > 4 * 50, "{text}");
}
