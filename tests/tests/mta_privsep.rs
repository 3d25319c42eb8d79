//! Privilege separation: mta started as root with `user` set keeps uid 0
//! only in its privileged helper, and system users still log in (IMAP,
//! POP3) and get mail into their own home, owned by them; webmail, which
//! cannot reach their files, refuses them with a page saying so.

use greyd_tests::mta::{HOST, MtaSetup, curl_session, form_token, python, run_ok, send_note, wait_messages};
use greyd_tests::users::SystemUser;
use greyd_tests::wait_port;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

/// One process's fields from /proc/PID/status.
struct Process {
    pid: u32,
    name: String,
    parent: u32,
    /// Real, effective, saved and file-system uids.
    uids: Vec<u32>,
}

fn processes() -> Vec<Process> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        all.push(Process {
            pid,
            name: field("Name:"),
            parent: field("PPid:").parse().unwrap_or(0),
            uids: field("Uid:")
                .split_whitespace()
                .filter_map(|u| u.parse().ok())
                .collect(),
        });
    }
    all
}

/// `root` and every process descended from it.
fn tree(root: u32) -> Vec<Process> {
    let all = processes();
    let mut pids = vec![root];
    let mut i = 0;
    while i < pids.len() {
        let parent = pids[i];
        pids.extend(all.iter().filter(|p| p.parent == parent).map(|p| p.pid));
        i += 1;
    }
    all.into_iter().filter(|p| pids.contains(&p.pid)).collect()
}

const CLIENTS: &str = r#"
import imaplib, poplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
imaps, pop3s, user, pw = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
bad = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
try:
    bad.login(user, pw + "x")
    print("wrong password accepted")
except imaplib.IMAP4.error as e:
    print("imap wrong password:", e)
m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
print("imap login:", m.login(user, pw)[0])
typ, data = m.select("INBOX")
print("imap select:", typ, data[0].decode())
typ, data = m.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)])")
print("imap fetch:", typ, data[0][1].decode().strip())
m.logout()
p = poplib.POP3_SSL("127.0.0.1", pop3s, context=ctx)
p.user(user)
print("pop3 pass:", p.pass_(pw).decode())
print("pop3 stat:", p.stat())
print("pop3 subject:", [l.decode() for l in p.retr(1)[1] if l.startswith(b"Subject:")])
p.quit()
"#;

#[test]
fn only_the_helper_keeps_root_and_system_users_log_in_and_get_mail() {
    if !greyd_tests::netns::have_root("only_the_helper_keeps_root_and_system_users_log_in_and_get_mail") {
        return;
    }
    // Declared first, dropped last: userdel needs the daemon gone.
    let daemon_user = SystemUser::daemon("_mtat");
    let user = SystemUser::create("mtapx");
    user.set_password("s3cret-pw");
    let setup = MtaSetup::new();
    setup.edit("user = \"\"", &format!("user = \"{}\"", daemon_user.name));
    // The tree belongs to the daemon's user; mta.toml stays readable by
    // all (the sessions run as the system user read it, as /etc/mta/mta.toml).
    run_ok(Command::new("chown").arg("-R").arg(&daemon_user.name).arg(setup.root()));
    run_ok(Command::new("chmod").arg("0755").arg(setup.root()));
    let mta = setup.start();
    wait_port(setup.imaps, Duration::from_secs(10));
    wait_port(setup.pop3s, Duration::from_secs(10));
    let unprivileged = nix_uid(&daemon_user.name);
    mta.wait_log(&format!("running as {}", daemon_user.name), Duration::from_secs(10));

    let procs = tree(mta.pid());
    let privileged: Vec<&Process> = procs.iter().filter(|p| p.uids.contains(&0)).collect();
    assert_eq!(privileged.len(), 1, "exactly one process keeps root");
    assert_eq!(privileged[0].name, "mta-privsep");
    assert_eq!(privileged[0].uids, [0, 0, 0, 0]);
    for p in procs.iter().filter(|p| p.name != "mta-privsep") {
        assert_eq!(
            p.uids, [unprivileged; 4],
            "process {} ({}) runs as the daemon's user",
            p.pid, p.name
        );
    }
    assert!(
        procs.iter().any(|p| p.pid == mta.pid()),
        "the daemon itself was checked"
    );

    let address = format!("{}@{HOST}", user.name);
    send_note(&setup, &address, "privsep note", "Hello from the front.");
    let maildir = user.home.join("Maildir");
    wait_messages(&maildir, 1);
    let owner = nix_uid(&user.name);
    let delivered = std::fs::read_dir(maildir.join("new")).unwrap().next().unwrap().unwrap();
    assert_eq!(delivered.metadata().unwrap().uid(), owner, "the message is the user's");
    assert_eq!(
        std::fs::metadata(&maildir).unwrap().uid(),
        owner,
        "the Maildir is the user's"
    );

    let (imaps, pop3s) = (setup.imaps.port().to_string(), setup.pop3s.port().to_string());
    let (ok, out, err) = python(CLIENTS, &[&imaps, &pop3s, &user.name, "s3cret-pw"]);
    println!("{out}");
    assert!(ok, "clients failed:\n{out}\n{err}\n{}", mta.log());
    assert!(out.contains("imap wrong password: b'[AUTHENTICATIONFAILED]"), "{out}");
    assert!(out.contains("imap login: OK"), "{out}");
    assert!(out.contains("imap select: OK 1"), "{out}");
    assert!(out.contains("imap fetch: OK Subject: privsep note"), "{out}");
    assert!(out.contains("pop3 pass: +OK Maildrop has 1 messages"), "{out}");
    assert!(out.contains("pop3 subject: ['Subject: privsep note']"), "{out}");

    // Webmail reads the store in the unprivileged daemon: a system user is
    // told where to read mail instead.
    let jar = setup.root().join("cookies");
    let base = format!("https://{}", setup.web);
    let (_, _, page) = curl_session(Some(&jar), &format!("{base}/login"), &[]);
    let creds = format!("user={}&password=s3cret-pw", user.name);
    let login = format!("{base}/login?csrf={}", form_token(&page));
    let (code, _, page) = curl_session(Some(&jar), &login, &["--data", &creds]);
    assert_eq!(code, 403, "{page}");
    assert!(page.contains("read system mail over IMAP or POP3"), "{page}");
}

fn nix_uid(name: &str) -> u32 {
    run_ok(Command::new("id").args(["-u", name])).trim().parse().unwrap()
}

#[test]
fn started_as_root_without_its_user_mta_refuses_naming_the_fix() {
    if !greyd_tests::netns::have_root("started_as_root_without_its_user_mta_refuses_naming_the_fix") {
        return;
    }
    let setup = MtaSetup::new();
    let missing = format!("_mtanone{}", std::process::id() % 100_000);
    setup.edit("user = \"\"", &format!("user = \"{missing}\""));
    let out = Command::new(greyd_tests::bin("mta"))
        .arg("--config")
        .arg(&setup.config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started anyway: {err}");
    assert!(
        err.contains(&format!("user {missing} (the `user` setting) does not exist")),
        "{err}"
    );
    assert!(err.contains("useradd --system"), "{err}");
    assert!(err.contains("cargo xtask install"), "{err}");
    assert!(err.contains("user = \"\""), "{err}");
}
