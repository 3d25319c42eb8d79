//! Connection limits of mta's network layer: one address cannot hold more
//! than its share of a service, and when the process-wide budget is spent new
//! clients are refused with a clear line while the queue and delivery go on.

use greyd_tests::mta::{MtaSetup, run_with_input, wait_messages};
use greyd_tests::{Daemon, bin, connect_from, wait_port};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

/// The first line the server sends, or "" at EOF.
fn first_line(stream: &TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut line = String::new();
    let _ = BufReader::new(stream).read_line(&mut line);
    line.trim_end().to_string()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn one_address_cannot_hold_more_imap_connections_than_its_cap() {
    let setup = MtaSetup::new();
    setup.edit(
        "quota = 0\nmax_connections_per_client = 50",
        "quota = 0\nmax_connections_per_client = 5",
    );
    let _mta = setup.start();
    wait_port(setup.imap, Duration::from_secs(10));
    let mut held: Vec<TcpStream> = (0..5)
        .map(|_| {
            let s = connect_from(ip("127.0.0.7"), setup.imap).unwrap();
            assert!(first_line(&s).starts_with("* OK"), "within the cap");
            s
        })
        .collect();
    let refused = connect_from(ip("127.0.0.7"), setup.imap).unwrap();
    assert_eq!(
        first_line(&refused),
        "* BYE [UNAVAILABLE] Too many connections from your address"
    );
    assert_eq!(first_line(&refused), "", "and the connection is closed");
    let other = connect_from(ip("127.0.0.8"), setup.imap).unwrap();
    assert!(
        first_line(&other).starts_with("* OK"),
        "other addresses are not affected"
    );
    held.pop();
    std::thread::sleep(Duration::from_millis(300));
    let again = connect_from(ip("127.0.0.7"), setup.imap).unwrap();
    assert!(
        first_line(&again).starts_with("* OK"),
        "a freed place can be taken again"
    );
}

#[test]
fn the_descriptor_limit_is_raised_and_a_spent_budget_refuses_while_mail_flows() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    setup.edit(
        "quota = 0\nmax_connections_per_client = 50",
        "quota = 0\nmax_connections_per_client = 1000",
    );
    let mut cmd = Command::new(bin("mta"));
    cmd.arg("--config").arg(&setup.config);
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 320,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mta = Daemon::spawn(cmd);
    wait_port(setup.smtp, Duration::from_secs(10));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", mta.pid())).unwrap();
    let open_files = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    assert_eq!(
        open_files.split_whitespace().collect::<Vec<_>>()[3..5],
        ["320", "320"],
        "soft limit raised to the hard one: {open_files}"
    );
    // 320 descriptors, a quarter kept back: 240 connections (the probe above was one).
    mta.wait_log("at most 240 connections", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(200));
    let mut held = Vec::new();
    for i in 0..240 {
        let s = connect_from(ip(&format!("127.0.1.{}", 1 + i / 100)), setup.imap).unwrap();
        let line = first_line(&s);
        assert!(line.starts_with("* OK"), "connection {i}: {line:?}");
        held.push(s);
    }
    let imap = connect_from(ip("127.0.2.1"), setup.imap).unwrap();
    assert_eq!(
        first_line(&imap),
        "* BYE [UNAVAILABLE] Too many connections, try again later"
    );
    let smtp = connect_from(ip("127.0.2.1"), setup.smtp).unwrap();
    assert_eq!(first_line(&smtp), "421 4.3.2 Too many connections, try again later");
    // The reserve keeps the queue and delivery going.
    let out = run_with_input(
        setup.command("sendmail").arg("alice@example.test"),
        b"Subject: still delivered\n\nwhile every connection is taken\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let msgs = wait_messages(&setup.maildir("alice@example.test"), 1);
    assert!(String::from_utf8_lossy(&msgs[0]).contains("Subject: still delivered"));
    held.truncate(200);
    std::thread::sleep(Duration::from_millis(300));
    let smtp = connect_from(ip("127.0.2.1"), setup.smtp).unwrap();
    assert!(first_line(&smtp).starts_with("220 "), "places freed: SMTP greets again");
    assert!(!mta.log().contains("Too many open files"), "{}", mta.log());
}
