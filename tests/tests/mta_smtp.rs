//! mta SMTP protocol end to end: delivery read back byte for byte,
//! pipelining, CHUNKING, the SMTP smuggling endings, bad input, limits.

use greyd_tests::mta::*;
use std::io::Write;

const SENDER: &str = "bob@remote.test";

fn send_envelope(c: &mut greyd_tests::SmtpClient, rcpt: &str) {
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    assert_eq!(c.cmd(&format!("MAIL FROM:<{SENDER}>")).unwrap().code, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{rcpt}>")).unwrap().code, 250);
}

/// A new session to `rcpt`, past DATA's 354.
fn data_session(addr: std::net::SocketAddr, rcpt: &str) -> greyd_tests::SmtpClient {
    let mut c = smtp(addr);
    send_envelope(&mut c, rcpt);
    assert_eq!(c.cmd("DATA").unwrap().code, 354);
    c
}

#[test]
fn data_is_delivered_to_maildir_byte_for_byte() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    let _mta = setup.start();
    let mut c = data_session(setup.smtp, "alice@example.test");
    // A stuffed dot line, a line of just two dots, 8-bit text and a tab.
    c.send_raw("Subject: t\r\n\r\n..leading dot\r\n...\r\nüñí\tcode\r\n.\r\n".as_bytes())
        .unwrap();
    let r = c.reply().unwrap();
    assert_eq!(r.code, 250, "{r:?}");
    let id = r.text().rsplit(' ').next().unwrap().to_string();
    assert_eq!(c.cmd("QUIT").unwrap().code, 221);
    let msgs = wait_messages(&setup.maildir("alice@example.test"), 1);
    let (received, rest) = strip_trace(&msgs[0], SENDER);
    assert!(
        received.starts_with(&format!(
            "Received: from client.test ([127.0.0.1]) by mx.test (mta) with ESMTP id {id} for <alice@example.test>; "
        )),
        "{received}"
    );
    assert_eq!(rest, "Subject: t\n\n.leading dot\n..\nüñí\tcode\n".as_bytes());
}

#[test]
fn pipelined_commands_and_bdat_chunks() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    let _mta = setup.start();
    let mut c = smtp(setup.smtp);
    let ehlo = c.cmd("EHLO client.test").unwrap();
    for cap in [
        "PIPELINING",
        "CHUNKING",
        "8BITMIME",
        "SMTPUTF8",
        "DSN",
        "ENHANCEDSTATUSCODES",
        "STARTTLS",
        "ETRN",
    ] {
        assert!(ehlo.lines.iter().any(|l| l.starts_with(cap)), "{cap} missing: {ehlo:?}");
    }
    assert!(!ehlo.text().contains("AUTH"), "AUTH offered before TLS: {ehlo:?}");
    // One write: the whole transaction, with BDAT chunks (bytes, not lines).
    c.send_raw(
        b"MAIL FROM:<bob@remote.test> BODY=8BITMIME\r\nRCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE\r\n\
          BDAT 14\r\nSubject: b\r\n\r\nBDAT 9 LAST\r\n.x\r\nend\r\nNOOP\r\n",
    )
    .unwrap();
    let codes: Vec<u16> = (0..5).map(|_| c.reply().unwrap().code).collect();
    assert_eq!(codes, vec![250, 250, 250, 250, 250]);
    let msgs = wait_messages(&setup.maildir("alice@example.test"), 1);
    let (_, rest) = strip_trace(&msgs[0], SENDER);
    // No dot-unstuffing in BDAT.
    assert_eq!(rest, b"Subject: b\n\n.x\nend\n");
}

#[test]
fn smuggling_endings_never_end_data() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    let _mta = setup.start();
    for ending in [&b"\n.\n"[..], b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"] {
        let mut c = data_session(setup.smtp, "alice@example.test");
        let mut data = b"Subject: outer\r\n\r\nhello".to_vec();
        data.extend_from_slice(ending);
        data.extend_from_slice(
            b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n",
        );
        c.send_raw(&data).unwrap();
        // Nothing ended the data yet: a NOOP is still data, and no reply arrives until the real end.
        c.send_raw(b"NOOP\r\n.\r\n").unwrap();
        let r = c.reply().unwrap();
        assert_eq!(r.code, 550, "ending {ending:?}: {r:?}");
        assert!(r.text().contains("5.6.0"), "{r:?}");
        assert_eq!(c.cmd("NOOP").unwrap().code, 250, "session out of sync after {ending:?}");
    }
    // A clean message afterwards is the only one delivered.
    let mut c = data_session(setup.smtp, "alice@example.test");
    assert_eq!(c.cmd("Subject: clean\r\n\r\nok\r\n.").unwrap().code, 250);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let msgs = wait_messages(&setup.maildir("alice@example.test"), 1);
    let text = String::from_utf8_lossy(&msgs[0]);
    assert!(text.contains("Subject: clean") && !text.contains("smuggled"), "{text}");
}

#[test]
fn a_dot_line_with_a_bare_cr_is_rejected_at_the_next_terminator() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    let _mta = setup.start();
    let mut c = data_session(setup.smtp, "alice@example.test");
    // `.` CR CR LF is not the end, but the `.` CRLF line right after it is: the reply
    // comes at once and the QUIT behind it is a command, not message data.
    c.send_raw(b"x\r\n.\r\r\n.\r\nQUIT\r\n").unwrap();
    let r = c.reply().unwrap();
    assert_eq!(r.code, 550, "{r:?}");
    assert!(r.text().contains("5.6.0"), "{r:?}");
    assert_eq!(c.reply().unwrap().code, 221);
}

#[test]
fn bad_command_lines_get_clear_errors() {
    let setup = MtaSetup::new();
    setup.edit("max_errors = 20", "max_errors = 6");
    let _mta = setup.start();
    let mut c = smtp(setup.smtp);
    let long = format!("NOOP {}", "x".repeat(3000));
    let r = c.cmd(&long).unwrap();
    assert_eq!((r.code, r.text().contains("5.5.2")), (500, true), "{r:?}");
    c.send_raw(b"NOOP\x00\r\n").unwrap();
    assert_eq!(c.reply().unwrap().code, 500);
    c.send_raw(b"NOOP\n").unwrap();
    assert_eq!(c.reply().unwrap().code, 500);
    c.send_raw(b"HELO a\rRCPT\r\n").unwrap();
    assert_eq!(c.reply().unwrap().code, 500);
    assert_eq!(c.cmd("HELO a b").unwrap().code, 501);
    assert_eq!(c.cmd("VRFY alice").unwrap().code, 252);
    // The sixth error closes the session.
    let r = c.cmd("BOGUS").unwrap();
    assert_eq!(r.code, 500);
    let r = c.reply().unwrap();
    assert_eq!(r.code, 421, "{r:?}");
    assert!(c.read_to_end().unwrap().is_empty());
}

#[test]
fn recipient_and_connection_limits() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    setup.edit("max_recipients = 1000", "max_recipients = 3");
    setup.edit("max_connections_per_client = 50", "max_connections_per_client = 2");
    let _mta = setup.start();
    let mut c = smtp(setup.smtp);
    send_envelope(&mut c, "alice@example.test");
    assert_eq!(c.cmd("RCPT TO:<alice+a@example.test>").unwrap().code, 250);
    assert_eq!(c.cmd("RCPT TO:<alice+b@example.test>").unwrap().code, 250);
    let r = c.cmd("RCPT TO:<alice+c@example.test>").unwrap();
    assert_eq!(r.code, 452, "{r:?}");
    let _second = smtp(setup.smtp);
    let mut third = greyd_tests::SmtpClient::new(
        std::net::TcpStream::connect(setup.smtp).unwrap(),
        std::time::Duration::from_secs(5),
    );
    assert_eq!(third.reply().unwrap().code, 421);
    drop(c);
}

#[test]
fn swaks_and_curl_deliver() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    let _mta = setup.start();
    let port = setup.smtp.port().to_string();
    run_ok(std::process::Command::new("swaks").args([
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--from",
        SENDER,
        "--to",
        "alice@example.test",
        "--header",
        "Subject: via swaks",
        "--tls",
    ]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("msg");
    let mut f = std::fs::File::create(&file).unwrap();
    f.write_all(b"Subject: via curl\r\n\r\ncurl body\r\n").unwrap();
    run_ok(
        std::process::Command::new("curl")
            .args([
                "-sS",
                &format!("smtp://127.0.0.1:{port}"),
                "--mail-from",
                SENDER,
                "--mail-rcpt",
                "alice@example.test",
                "-T",
            ])
            .arg(&file),
    );
    let msgs = wait_messages(&setup.maildir("alice@example.test"), 2);
    let all: String = msgs.iter().map(|m| String::from_utf8_lossy(m).into_owned()).collect();
    assert!(
        all.contains("Subject: via swaks") && all.contains("with ESMTPS"),
        "{all}"
    );
    assert!(all.contains("Subject: via curl\n\ncurl body\n"), "{all}");
}

#[test]
fn idle_clients_are_timed_out_and_smtputf8_is_honoured() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    setup.edit("command_timeout = \"5m\"", "command_timeout = \"1s\"");
    let _mta = setup.start();
    let mut c = smtp(setup.smtp);
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    assert_eq!(c.cmd("MAIL FROM:<bøb@remote.test>").unwrap().code, 501);
    assert_eq!(c.cmd("MAIL FROM:<bob@remote.test>").unwrap().code, 250);
    assert_eq!(c.cmd("RCPT TO:<ålice@example.test>").unwrap().code, 553);
    assert_eq!(c.cmd("RSET").unwrap().code, 250);
    assert_eq!(c.cmd("MAIL FROM:<bøb@remote.test> SMTPUTF8").unwrap().code, 250);
    assert_eq!(c.cmd("RCPT TO:<alice@example.test>").unwrap().code, 250);
    let r = c.reply().unwrap();
    assert_eq!(r.code, 421, "{r:?}");
    assert!(r.text().contains("4.4.2"), "{r:?}");
}

#[test]
fn help_names_the_commands() {
    let setup = MtaSetup::new();
    let _mta = setup.start();
    let mut c = smtp(setup.smtp);
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    let help = c.cmd("HELP").unwrap();
    assert_eq!(help.code, 214, "{help:?}");
    for command in ["EHLO", "MAIL", "RCPT", "DATA", "BDAT", "STARTTLS", "AUTH"] {
        assert!(help.text().contains(command), "{command} missing: {help:?}");
    }
}

#[test]
fn a_stalled_data_phase_times_out() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    setup.edit("data_timeout = \"10m\"", "data_timeout = \"2s\"");
    let _mta = setup.start();
    let mut c = data_session(setup.smtp, "alice@example.test");
    c.send_raw(b"Subject: half a message\r\n").unwrap();
    let r = c.reply().unwrap();
    assert_eq!(r.code, 421, "{r:?}");
    assert!(c.read_to_end().unwrap().is_empty(), "connection closed after 421");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        std::fs::read_dir(setup.maildir("alice@example.test").join("new"))
            .unwrap()
            .next()
            .is_none(),
        "nothing delivered"
    );
}
