//! greyd-setup against a running greyd: lists loaded, replaced and dropped
//! are what greyd then does to connecting sources; a failing source leaves
//! greyd's copy of the list whole.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use greyd_tests::greyd::{Greyd, Upstream};
use greyd_tests::setup::{Run, greyd_setup, gzip};

struct Setup {
    dir: tempfile::TempDir,
    greyd: Greyd,
    _upstream: Upstream,
}

impl Setup {
    fn start() -> Setup {
        Setup::start_on("127.0.0.1")
    }

    /// greyd listening on `listen` (127.0.0.1 or ::1).
    fn start_on(listen: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let upstream = Upstream::start();
        let up = upstream.addr.to_string();
        // -s 0: no stutter, so the black dialogue is quick.
        let greyd = Greyd::start(dir.path(), &["-l", listen, "-s", "0", "--upstream", &up]);
        Setup {
            dir,
            greyd,
            _upstream: upstream,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write spamd.conf with these (name, kind, list file) entries and run greyd-setup.
    fn run(&self, lists: &[(&str, &str)], extra: &[&str]) -> Run {
        let conf = self.path("spamd.conf");
        std::fs::write(&conf, spamd_conf(self.dir.path(), lists)).unwrap();
        let control = self.greyd.control_path();
        let cache = self.path("cache");
        let mut args = vec![
            "--control",
            control.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
        ];
        args.extend(extra);
        greyd_setup(&conf, &args)
    }

    fn lists(&self) -> String {
        self.greyd.control(r#"{"op":"list_lists"}"#)
    }

    /// The lists without the times they were loaded: what a run that
    /// reloads the last good copy leaves unchanged.
    fn list_contents(&self) -> serde_json::Value {
        let mut lists: serde_json::Value = serde_json::from_str(&self.lists()).unwrap();
        for l in lists["lists"].as_array_mut().unwrap() {
            l.as_object_mut().unwrap().remove("loaded");
        }
        lists
    }

    /// The reply a source gets at the end of DATA (black) or to DATA (grey).
    fn reply_to(&self, ip: &str) -> String {
        let to = SocketAddr::new(
            if ip.contains(':') { "::1" } else { "127.0.0.1" }.parse().unwrap(),
            self.greyd.port,
        );
        let (mut c, banner) = self.greyd.smtp_to(ip, to);
        assert_eq!(banner.code, 220);
        c.cmd("HELO client.example").unwrap();
        c.cmd("MAIL FROM:<a@b.example>").unwrap();
        c.cmd("RCPT TO:<c@d.example>").unwrap();
        let data = c.cmd("DATA").unwrap();
        if data.code != 354 {
            return format!("{} {}", data.code, data.text());
        }
        let end = c.cmd("Subject: x\r\n\r\nbody\r\n.").unwrap();
        format!("{} {}", end.code, end.text())
    }
}

/// Black lists get `msg="Go away %A\nlisted by NAME"`; every list reads file NAME.txt.
fn spamd_conf(dir: &Path, lists: &[(&str, &str)]) -> String {
    let names: Vec<&str> = lists.iter().map(|(n, _)| *n).collect();
    let mut text = format!("all:{}:\n", names.join(":"));
    for (name, kind) in lists {
        let file = dir.join(format!("{name}.txt"));
        let msg = if *kind == "black" {
            format!(":msg=\"Go away %A\\nlisted by {name}\"")
        } else {
            String::new()
        };
        text.push_str(&format!("{name}:{kind}{msg}:method=file:file={}:\n", file.display()));
    }
    text
}

#[test]
fn lists_are_loaded_replaced_and_dropped() {
    let s = Setup::start();
    std::fs::write(s.path("spam.txt"), "127.0.20.0/24\n").unwrap();
    std::fs::write(s.path("friends.txt"), "127.0.20.128/25\n").unwrap();
    std::fs::write(s.path("other.txt"), "127.0.21.1\n").unwrap();
    let config = [("spam", "black"), ("friends", "white"), ("other", "black")];
    assert!(s.run(&config, &[]).ok);

    let lists = s.lists();
    assert!(
        lists.contains(r#"{"name":"spam","kind":"black","hard_block":false,"entries":1,"loaded":"#),
        "{lists}"
    );
    assert!(
        lists.contains(r#"{"name":"other","kind":"black","hard_block":false,"entries":1,"loaded":"#),
        "{lists}"
    );
    assert_eq!(s.reply_to("127.0.20.5"), "450 Go away 127.0.20.5\nlisted by spam");
    assert!(
        s.reply_to("127.0.20.200").starts_with("451 "),
        "white list subtracted: greylisted, not black"
    );
    assert!(s.reply_to("127.0.21.1").ends_with("listed by other"));

    // The source changes: the list is replaced, not added to.
    std::fs::write(s.path("spam.txt"), "127.0.22.0/24\n").unwrap();
    assert!(s.run(&config, &[]).ok);
    assert!(s.reply_to("127.0.20.5").starts_with("451 "));
    assert!(s.reply_to("127.0.22.9").ends_with("listed by spam"));

    // "other" leaves the configuration, and greyd.
    assert!(s.run(&config[..2], &[]).ok);
    let lists = s.lists();
    assert!(lists.contains(r#""spam""#) && !lists.contains(r#""other""#), "{lists}");
    assert!(s.reply_to("127.0.21.1").starts_with("451 "));
}

#[test]
fn failing_source_leaves_the_list_whole() {
    let s = Setup::start();
    let many: String = (0..200).map(|i| format!("127.0.30.{i}\n127.0.31.{i}\n")).collect();
    std::fs::write(s.path("spam.txt"), &many).unwrap();
    let config = [("spam", "black")];
    assert!(s.run(&config, &[]).ok);
    let before = s.list_contents();

    // A truncated download: half the entries are there, the gzip end is not.
    let zipped = gzip(format!("{many}127.0.32.1\n").as_bytes());
    std::fs::write(s.path("spam.txt"), &zipped[..zipped.len() / 2]).unwrap();
    let run = s.run(&config, &[]);
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains(&format!("list spam: {}: ", s.path("spam.txt").display()))
    );
    assert!(run.stderr.contains("keeping the last good copy"));
    assert_eq!(s.list_contents(), before);
    assert!(s.reply_to("127.0.31.199").ends_with("listed by spam"));
    assert!(s.reply_to("127.0.32.1").starts_with("451 "));
}

#[test]
fn hard_block_flag_reaches_greyd() {
    let s = Setup::start();
    std::fs::write(s.path("spam.txt"), "127.0.40.0/24\n").unwrap();
    assert!(s.run(&[("spam", "black")], &["-b"]).ok);
    let lists = s.lists();
    assert!(
        lists.contains(r#"{"name":"spam","kind":"black","hard_block":true,"entries":1,"loaded":"#),
        "{lists}"
    );
}

#[test]
fn unreachable_greyd_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spam.txt"), "127.0.40.0/24\n").unwrap();
    let conf = dir.path().join("spamd.conf");
    std::fs::write(&conf, spamd_conf(dir.path(), &[("spam", "black")])).unwrap();
    let cache = dir.path().join("cache");
    let run = greyd_setup(
        &conf,
        &[
            "--control",
            "/nonexistent/greyd.sock",
            "--cache",
            cache.to_str().unwrap(),
        ],
    );
    assert!(!run.ok);
    assert!(run.stderr.contains("cannot reach greyd at /nonexistent/greyd.sock"));
}

#[test]
fn daemonized_run_loads_the_lists() {
    let s = Setup::start();
    std::fs::write(s.path("spam.txt"), "127.0.41.0/24\n").unwrap();
    assert!(s.run(&[("spam", "black")], &["-D"]).ok);
    greyd_tests::greyd::eventually("the list to be loaded", std::time::Duration::from_secs(10), || {
        s.lists().contains(r#""spam""#)
    });
}

#[test]
fn ipv6_sources_in_a_list_get_its_message() {
    let s = Setup::start_on("::1");
    std::fs::write(s.path("spam6.txt"), "::1\n2001:db8::/32\n").unwrap();
    assert!(s.run(&[("spam6", "black")], &[]).ok);
    let lists = s.lists();
    assert!(
        lists.contains(r#"{"name":"spam6","kind":"black","hard_block":false,"entries":2,"loaded":"#),
        "{lists}"
    );
    assert_eq!(s.reply_to("::1"), "450 Go away ::1\nlisted by spam6");
}
