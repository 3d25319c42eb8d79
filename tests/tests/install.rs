//! `cargo xtask install` into a staging root, checked file by file (modes,
//! owners, contents the daemons accept), run again (nothing rewritten), with
//! an edited file (kept) and as a dry run (nothing written); the systemd
//! units checked by `systemd-analyze verify`; the daemons' READY=1 to a
//! notify socket; greyd's drop to `_greyd`.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use greyd_tests::mta::{MtaSetup, run_ok};
use greyd_tests::{Daemon, SmtpClient, bin, free_port};

/// Held by tests whose outcome depends on whether `_greyd` exists (one test creates it).
static SYSTEM_USERS: Mutex<()> = Mutex::new(());

const UNITS: [&str; 4] = [
    "greyd.service",
    "mta.service",
    "greyd-setup.service",
    "greyd-setup.timer",
];

/// Run the installer into `root` with the test's binaries; its output.
fn install(root: &Path, extra: &[&str]) -> String {
    let bin_dir = bin("mta").parent().unwrap().to_path_buf();
    run_ok(
        Command::new(bin("xtask"))
            .args(["install", "--prefix", "/usr", "--hostname", "mx.example.org"])
            .args(["--domain", "example.org", "--bin-dir"])
            .arg(bin_dir)
            .arg("--root")
            .arg(root)
            .args(extra),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `dir` with its modification time.
fn mtimes(dir: &Path) -> BTreeMap<PathBuf, SystemTime> {
    let mut all = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                todo.push(entry.path());
            }
            all.insert(entry.path(), meta.modified().unwrap());
        }
    }
    all
}

fn uid_of(name: &str) -> Option<u32> {
    let out = Command::new("id").args(["-u", name]).output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().unwrap())
}

#[test]
fn install_writes_every_file_with_its_mode_and_a_second_run_changes_nothing() {
    let _users = SYSTEM_USERS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let out = install(root, &[]);

    let bin_dir = bin("mta").parent().unwrap().to_path_buf();
    for (name, dir) in [
        ("greyd", "sbin"),
        ("greydb", "sbin"),
        ("greyd-setup", "sbin"),
        ("mta", "sbin"),
        ("mtactl", "sbin"),
        ("sendmail", "sbin"),
        ("newaliases", "sbin"),
        ("mailq", "bin"),
    ] {
        let path = root.join("usr").join(dir).join(name);
        assert_eq!(mode(&path), 0o755, "{}", path.display());
        assert!(
            std::fs::read(&path).unwrap() == std::fs::read(bin_dir.join(name)).unwrap(),
            "{} is not the built {name}",
            path.display()
        );
    }

    // The configurations name the host's paths, and the daemons accept them.
    let greyd_toml = root.join("etc/greyd/greyd.toml");
    assert_eq!(mode(&greyd_toml), 0o644);
    assert!(read(&greyd_toml).contains("hostname = \"mx.example.org\""));
    assert!(read(&greyd_toml).contains("control = \"/run/greyd/greyd.sock\""));
    let check = run_ok(
        Command::new(bin("greyd"))
            .arg("--check-config")
            .arg("--config")
            .arg(&greyd_toml),
    );
    assert!(check.contains(": ok"), "{check}");
    let mta_toml = root.join("etc/mta/mta.toml");
    assert_eq!(mode(&mta_toml), 0o644);
    let text = read(&mta_toml);
    for expected in [
        "hostname = \"mx.example.org\"",
        "\"example.org\"",
        "\"/etc/mail/aliases\"",
        "\"/var/spool/mta\"",
        "\"/etc/mta/cert.pem\"",
    ] {
        assert!(text.contains(expected), "{expected} not in mta.toml:\n{text}");
    }
    let check = run_ok(
        Command::new(bin("mta"))
            .arg("--check-config")
            .arg("--config")
            .arg(&mta_toml),
    );
    assert!(check.contains(": ok"), "{check}");

    // The classic files, only because they were absent.
    assert!(read(&root.join("etc/mail/aliases")).contains("\npostmaster: root\n"));
    for name in [
        "aliases",
        "local-host-names",
        "relay-domains",
        "virtusertable",
        "spamd.conf",
    ] {
        assert_eq!(mode(&root.join("etc/mail").join(name)), 0o644, "{name}");
    }
    assert_eq!(
        read(&root.join("etc/mail/spamd.conf")),
        include_str!("../../xtask/dist/spamd.conf")
    );

    // Secrets: never readable by others.
    for secret in ["etc/mta/users", "etc/mta/srs.key", "etc/mta/key.pem"] {
        assert_eq!(mode(&root.join(secret)), 0o600, "{secret}");
    }
    assert!(read(&root.join("etc/mta/srs.key")).trim().len() >= 16);
    let dkim: Vec<_> = std::fs::read_dir(root.join("etc/mta/dkim"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dkim.len(), 1, "one DKIM key for example.org: {dkim:?}");
    assert_eq!(mode(&dkim[0]), 0o600);
    assert!(read(&dkim[0]).starts_with("-----BEGIN"), "{}", dkim[0].display());
    assert!(
        out.contains("example.org") && out.contains("v=DKIM1"),
        "the TXT record to publish:\n{out}"
    );

    // The certificate and key belong together and name the host.
    use rustls_pki_types::pem::PemObject;
    let cert = rustls_pki_types::CertificateDer::from_pem_file(root.join("etc/mta/cert.pem")).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(root.join("etc/mta/key.pem")).unwrap();
    assert!(
        cert.windows(b"mx.example.org".len()).any(|w| w == b"mx.example.org"),
        "the certificate names mx.example.org"
    );
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("the key matches the certificate");

    // Directories, with the owners this host has.
    let greyd_uid = uid_of("_greyd").unwrap_or(0);
    for (path, expected) in [
        ("var/spool/mta", 0o700),
        ("var/vmail", 0o700),
        ("var/mail", 0o700),
        ("var/db/greyd", 0o750),
        ("var/db/greyd/lists", 0o750),
    ] {
        assert_eq!(mode(&root.join(path)), expected, "{path}");
    }
    assert_eq!(std::fs::metadata(root.join("var/db/greyd")).unwrap().uid(), greyd_uid);
    let mta_uid = uid_of("_mta").unwrap_or(0);
    assert_eq!(std::fs::metadata(root.join("var/spool/mta")).unwrap().uid(), mta_uid);
    assert!(out.contains("skipped user _mta"), "{out}");

    for unit in UNITS {
        let path = root.join("usr/lib/systemd/system").join(unit);
        assert_eq!(mode(&path), 0o644, "{unit}");
        assert!(!read(&path).contains("@PREFIX@"), "{unit}");
    }
    assert!(read(&root.join("usr/lib/systemd/system/greyd.service")).contains("ExecStart=/usr/sbin/greyd -d"));
    assert!(read(&root.join("usr/lib/sysusers.d/greyd.conf")).contains("u _greyd"));

    // Again: every file says "unchanged" and none is rewritten.
    let before = mtimes(root);
    std::thread::sleep(Duration::from_millis(20));
    let again = install(root, &[]);
    assert!(
        !again.contains("created") && !again.contains("updated") && !again.contains("kept"),
        "{again}"
    );
    assert!(again.contains("unchanged"), "{again}");
    assert_eq!(mtimes(root), before, "the second run rewrote files");
}

#[test]
fn an_edited_file_is_kept_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &[]);
    let aliases = dir.path().join("etc/mail/aliases");
    let edited = "postmaster: alice@example.org\nabuse: postmaster\n";
    std::fs::write(&aliases, edited).unwrap();
    let unit = dir.path().join("usr/lib/systemd/system/mta.service");
    let unit_edited = format!("{}\n# local note\n", read(&unit));
    std::fs::write(&unit, &unit_edited).unwrap();
    let out = install(dir.path(), &[]);
    assert_eq!(read(&aliases), edited);
    assert_eq!(read(&unit), unit_edited);
    let kept: Vec<_> = out.lines().filter(|l| l.trim_start().starts_with("kept")).collect();
    assert_eq!(kept.len(), 2, "{out}");
    assert!(kept.iter().any(|l| l.contains("etc/mail/aliases")), "{out}");
}

#[test]
fn a_dry_run_prints_each_action_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = install(dir.path(), &["--dry-run"]);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the dry run wrote:\n{out}"
    );
    for expected in [
        "would create",
        "usr/sbin/greyd",
        "etc/greyd/greyd.toml",
        "etc/mta/mta.toml",
        "etc/mail/aliases",
        "etc/mta/cert.pem",
        "var/spool/mta",
        "greyd-setup.timer",
        "(DKIM key)",
    ] {
        assert!(out.contains(expected), "{expected} not in the dry run:\n{out}");
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_installed_units() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    install(root, &[]);
    // verify --root resolves the units' dependencies (sysinit.target,
    // network-online.target...) inside the root: give it the host's.
    let units = root.join("usr/lib/systemd/system");
    for entry in std::fs::read_dir("/usr/lib/systemd/system").unwrap() {
        let entry = entry.unwrap();
        let target = units.join(entry.file_name());
        if entry.file_type().unwrap().is_file() && !target.exists() {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args(UNITS.map(|u| units.join(u)))
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );

    // And it does catch a broken unit, so the check above means something.
    let broken = units.join("greyd.service");
    std::fs::write(
        &broken,
        read(&broken).replace("/usr/sbin/greyd -d", "/usr/sbin/greyd-missing -d"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a missing ExecStart program must fail verify");
}

/// A notify socket like systemd's: anyone may send to it (the daemons send after dropping root).
fn notify_socket() -> (tempfile::TempDir, PathBuf, UnixDatagram) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    (dir, path, socket)
}

/// The first datagram on `socket`, which must say READY=1.
fn expect_ready(socket: &UnixDatagram, daemon: &Daemon) {
    let mut buf = [0u8; 512];
    let n = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no notification: {e}; log:\n{}", daemon.log()));
    let message = String::from_utf8_lossy(&buf[..n]);
    assert!(message.lines().any(|l| l == "READY=1"), "{message:?}");
}

/// The real, effective, saved and filesystem ids on a `Uid:` or `Gid:` line of /proc/PID/status.
fn ids(pid: u32, field: &str) -> Vec<u32> {
    let status = read(Path::new(&format!("/proc/{pid}/status")));
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    line.split_whitespace().map(|n| n.parse().unwrap()).collect()
}

/// `_greyd`, made for the test when this host has none, removed after only then.
struct GreydUser {
    created: bool,
}

impl GreydUser {
    fn ensure() -> GreydUser {
        if uid_of("_greyd").is_some() {
            return GreydUser { created: false };
        }
        run_ok(Command::new("useradd").args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "_greyd",
        ]));
        GreydUser { created: true }
    }
}

impl Drop for GreydUser {
    fn drop(&mut self) {
        if self.created {
            let _ = Command::new("userdel").arg("_greyd").output();
        }
    }
}

#[test]
fn greyd_says_ready_after_binding_and_runs_as_greyd() {
    let _users = SYSTEM_USERS.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() } == 0,
        "this test starts greyd as root, so that it drops to _greyd"
    );
    let user = GreydUser::ensure();
    let uid = uid_of("_greyd").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_notify_dir, notify, socket) = notify_socket();
    let port = free_port();
    let mut cmd = Command::new(bin("greyd"));
    cmd.args([
        "-d",
        "-l",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "--firewall",
        "none",
        "--db",
    ])
    .arg(dir.path().join("greyd.db"))
    .arg("--control")
    .arg(dir.path().join("greyd.sock"))
    .env("NOTIFY_SOCKET", &notify);
    let mut greyd = Daemon::spawn(cmd);
    expect_ready(&socket, &greyd);
    // Ready means serving: the banner comes without waiting for the port.
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("greyd listens once ready");
    let mut smtp = SmtpClient::new(stream, Duration::from_secs(30));
    assert_eq!(smtp.reply().unwrap().code, 220);
    assert_eq!(ids(greyd.pid(), "Uid:"), vec![uid; 4], "greyd's uids after start");
    let gid: u32 = String::from_utf8_lossy(&Command::new("id").args(["-g", "_greyd"]).output().unwrap().stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(ids(greyd.pid(), "Gid:"), vec![gid; 4], "greyd's gids after start");
    greyd.terminate();
    drop(user);
}

#[test]
fn mta_says_ready_once_its_listeners_are_bound() {
    let setup = MtaSetup::new();
    let (_notify_dir, notify, socket) = notify_socket();
    let mut cmd = Command::new(bin("mta"));
    cmd.arg("--config").arg(&setup.config).env("NOTIFY_SOCKET", &notify);
    let mta = Daemon::spawn(cmd);
    expect_ready(&socket, &mta);
    let stream = std::net::TcpStream::connect(setup.smtp).expect("mta listens once ready");
    let mut smtp = SmtpClient::new(stream, Duration::from_secs(30));
    assert_eq!(smtp.reply().unwrap().code, 220);
}

#[test]
fn under_systemd_mta_logs_to_the_journal_stream_with_priorities() {
    let setup = MtaSetup::new();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("journal");
    let log = std::fs::File::create(&log_path).unwrap();
    let meta = log.metadata().unwrap();
    // systemd names the stream it connected to stderr; a file stands in for its socket.
    let mut cmd = Command::new(bin("mta"));
    cmd.arg("--config")
        .arg(&setup.config)
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdin(std::process::Stdio::null())
        .stderr(log);
    let mut mta = cmd.spawn().unwrap();
    greyd_tests::wait_port(setup.smtp, Duration::from_secs(10));
    let _ = Command::new("kill").arg(mta.id().to_string()).status();
    mta.wait().unwrap();
    let text = read(&log_path);
    let listening = text
        .lines()
        .find(|l| l.contains("listening on"))
        .unwrap_or_else(|| panic!("no listening line in:\n{text}"));
    // Info is priority 6; the journal adds the time, so the line has none.
    assert!(listening.starts_with("<6>listening on "), "{listening:?}");
    assert!(
        text.lines().all(|l| l.starts_with('<')),
        "every line has a priority:\n{text}"
    );
}
