//! Limits and bad input: overlong lines, NUL bytes, junk, too many bad
//! commands, idle clients, maxcon, and a kill -9 in the middle of writes.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use greyd_tests::greyd::Greyd;

fn fast(dir: &std::path::Path, extra: &[&str]) -> Greyd {
    let mut args = vec!["--firewall", "none", "-s", "0", "-S", "0"];
    args.extend_from_slice(extra);
    Greyd::start(dir, &args)
}

#[test]
fn overlong_lines_nul_bytes_and_bare_lf_get_clean_replies() {
    let dir = tempfile::tempdir().unwrap();
    let g = fast(dir.path(), &[]);
    let (mut c, _) = g.smtp_from("127.0.40.1");
    c.send_raw(&vec![b'A'; 100_000]).unwrap();
    let r = c.cmd("").unwrap();
    assert_eq!((r.code, r.text()), (500, "5.5.2 Line too long".into()));
    let r = c.cmd("HELO a\0b").unwrap();
    assert_eq!((r.code, r.text()), (500, "5.5.2 NUL byte in command".into()));
    // Bare LF ends a command line, as spamd accepts.
    c.send_raw(b"HELO bare.example\n").unwrap();
    assert_eq!(c.reply().unwrap().code, 250);
    // Pipelined commands are answered in order.
    c.send_raw(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nNOOP\r\n")
        .unwrap();
    assert_eq!(c.reply().unwrap().code, 250);
    assert_eq!(c.reply().unwrap().code, 250);
    assert_eq!(c.reply().unwrap().text(), "2.0.0 OK I did nothing");
    assert_eq!(c.cmd("QUIT").unwrap().code, 221);
    assert!(
        g.greydb(&[])
            .contains("GREY|127.0.40.1|bare.example|<a@b.example>|<c@d.example>|")
    );
}

#[test]
fn more_than_twenty_bad_commands_end_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let g = fast(dir.path(), &[]);
    let (mut c, _) = g.smtp_from("127.0.40.2");
    for _ in 0..20 {
        assert_eq!(c.cmd("XYZZY").unwrap().code, 500);
    }
    let last = c.cmd("XYZZY").unwrap();
    assert_eq!(last.code, 421);
    assert!(c.read_to_end().unwrap().is_empty(), "connection closed");
}

#[test]
fn idle_clients_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("greyd.toml"), "idle_timeout = \"1s\"\n").unwrap();
    let config = dir.path().join("greyd.toml").display().to_string();
    let g = fast(dir.path(), &["--config", &config]);
    let (mut c, _) = g.smtp_from("127.0.40.3");
    let r = c.reply().unwrap();
    assert_eq!(r.code, 421, "{r:?}");
    assert!(c.read_to_end().unwrap().is_empty());
}

#[test]
fn maxcon_refuses_extra_connections() {
    let dir = tempfile::tempdir().unwrap();
    let g = fast(dir.path(), &["-c", "2", "-B", "2"]);
    let (_a, _) = g.smtp_from("127.0.41.1");
    let (_b, _) = g.smtp_from("127.0.41.2");
    let mut third = greyd_tests::connect_from("127.0.41.3".parse().unwrap(), g.addr()).unwrap();
    third.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let _ = third.read_to_end(&mut buf);
    assert_eq!(
        String::from_utf8_lossy(&buf),
        "421 4.3.2 Too many connections, try again later\r\n",
        "told to come back later, then closed"
    );
    g.daemon.wait_log("127.0.41.3: refused", Duration::from_secs(5));
    drop(_a);
    // Room again once a connection ends.
    greyd_tests::greyd::eventually("a free slot", Duration::from_secs(5), || {
        let s = greyd_tests::connect_from("127.0.41.4".parse().unwrap(), g.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut b = [0u8; 3];
        (&s).read_exact(&mut b).is_ok() && &b == b"220"
    });
}

#[test]
fn kill_9_during_writes_keeps_every_acknowledged_tuple() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = fast(dir.path(), &[]);
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (ack, stop, addr) = (Arc::clone(&acknowledged), Arc::clone(&stop), g.addr());
            std::thread::spawn(move || {
                let ip = format!("127.0.42.{}", w + 1);
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(s) = greyd_tests::connect_from(ip.parse().unwrap(), addr) else {
                        return;
                    };
                    let mut c = greyd_tests::SmtpClient::new(s, Duration::from_secs(5));
                    let rcpt = format!("r{n}@here.example");
                    let ok = c.reply().is_ok()
                        && c.cmd("HELO w.example").is_ok()
                        && c.cmd("MAIL FROM:<s@w.example>").is_ok()
                        && c.cmd(&format!("RCPT TO:<{rcpt}>")).is_ok_and(|r| r.code == 250);
                    if !ok {
                        return;
                    }
                    ack.lock()
                        .unwrap()
                        .push(format!("GREY|{ip}|w.example|<s@w.example>|<{rcpt}>|"));
                    let _ = c.send_raw(b"QUIT\r\n");
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    g.daemon.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acked = acknowledged.lock().unwrap().clone();
    assert!(acked.len() > 20, "the clients got some tuples in: {}", acked.len());

    // greydb reads the file directly while greyd is down.
    let out = std::process::Command::new(greyd_tests::bin("greydb"))
        .arg("--db")
        .arg(g.db_path())
        .arg("--control")
        .arg(dir.path().join("absent.sock"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "an explicit --control that does not answer is an error"
    );
    let out = std::process::Command::new(greyd_tests::bin("greydb"))
        .arg("--db")
        .arg(g.db_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8(out.stdout).unwrap();
    for t in &acked {
        assert!(
            listing.contains(t.as_str()),
            "acknowledged tuple {t} lost after kill -9"
        );
    }
    // And greyd starts again on the same database.
    g.restart();
    assert!(g.greydb(&[]).lines().count() >= acked.len());
}

#[test]
fn junk_from_many_clients_never_kills_greyd() {
    let dir = tempfile::tempdir().unwrap();
    let g = fast(dir.path(), &[]);
    let junk: Vec<Vec<u8>> = vec![
        vec![0u8; 5000],
        b"\r\r\r\n\n\n.\r\n".to_vec(),
        (0..=255u8).cycle().take(20_000).collect(),
        b"DATA\r\nDATA\r\n\xff\xfe\r\n".to_vec(),
        b"RCPT TO:\r\nMAIL FROM:\r\nHELO\r\nEHLO \t\r\n".to_vec(),
    ];
    for (i, j) in junk.iter().enumerate() {
        let mut s = greyd_tests::connect_from(format!("127.0.43.{}", i + 1).parse().unwrap(), g.addr()).unwrap();
        let _ = s.write_all(j);
        let _ = s.shutdown(std::net::Shutdown::Write);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("220 "), "banner first: {text:?}");
        assert!(
            text.lines().all(|l| l.len() >= 3 && l[..3].parse::<u16>().is_ok()),
            "only SMTP replies: {text:?}"
        );
    }
    assert_eq!(
        greyd_tests::greyd::attempt(&g, "127.0.43.99", "a@b.example", "c@d.example"),
        451,
        "still serving"
    );
}
