//! greyd started as root becomes its `user` once the eBPF programs are loaded
//! and its sockets bound: every uid and gid is the user's, no supplementary
//! groups, no capabilities, its files are the user's, and it still steers,
//! greylists and whitelists through the map descriptors it opened as root.
//! A `user` the configuration names but the system lacks is refused before
//! anything is loaded. (With nftables greyd stays root: firewall_nftables.rs.)
//!
//! Needs root, BPF and the eBPF toolchain greyd was built with; under CI a
//! missing piece fails the test.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use greyd_tests::ebpf::{PinDir, bpftool_lists, built_with_ebpf, config_lines, start_greyd};
use greyd_tests::greyd::eventually;
use greyd_tests::netns::{Pair, have_root, real_mta};
use greyd_tests::users::SystemUser;

/// The value fields of the `name:` line of a /proc status file.
fn status_field<'a>(status: &'a str, name: &str) -> Vec<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} line in\n{status}"))
        .split_whitespace()
        .collect()
}

#[test]
fn greyd_becomes_its_user_after_loading_ebpf_and_keeps_filtering() {
    if !have_root("greyd_privileges") || !built_with_ebpf("greyd_privileges") {
        return;
    }
    let user = SystemUser::daemon("_greydt");
    let (uid, gid) = user.ids();
    let pair = Pair::new(&["10.79.1.1"], &["10.79.1.2", "10.79.1.3"]);
    real_mta(&pair.server, 25);
    let dir = tempfile::tempdir().unwrap();
    let pin_guard = PinDir::for_this_process();
    std::fs::write(
        dir.path().join("greyd.toml"),
        format!(
            "user = \"{}\"\n{}keep_firewall = false\n",
            user.name,
            config_lines(&pair, &pin_guard)
        ),
    )
    .unwrap();
    let mut g = start_greyd(&pair, dir.path());
    g.daemon
        .wait_log(&format!("running as {}", user.name), Duration::from_secs(5));

    // Every thread: real, effective, saved and filesystem ids are the user's, no other group, no capability.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", g.daemon.pid())).unwrap();
    for task in tasks {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let (uid, gid) = (uid.to_string(), gid.to_string());
        assert_eq!(status_field(&status, "Uid"), [uid.as_str(); 4], "{status}");
        assert_eq!(status_field(&status, "Gid"), [gid.as_str(); 4], "{status}");
        assert_eq!(status_field(&status, "Groups"), [gid.as_str()], "{status}");
        for caps in ["CapEff", "CapPrm", "CapAmb"] {
            assert_eq!(status_field(&status, caps), ["0000000000000000"], "{caps} in\n{status}");
        }
    }
    // Without keep_firewall nothing stays pinned: the kernel detaches the programs when greyd exits.
    assert!(!pin_guard.0.exists(), "pins left for an unprivileged greyd to remove");

    // A source that is not whitelisted is steered to the tarpit.
    let mx: SocketAddr = "10.79.1.1:25".parse().unwrap();
    assert!(
        pair.banner("10.79.1.3", mx).unwrap().text().contains("spamd"),
        "tarpit banner"
    );

    // The unprivileged greyd records the tuple, whitelists the retry and updates the kernel's map.
    assert_eq!(pair.attempt("10.79.1.2", mx), 451);
    std::thread::sleep(Duration::from_millis(1100));
    pair.attempt("10.79.1.2", mx);
    assert_eq!(
        pair.banner("10.79.1.2", mx).unwrap().text(),
        "real MTA",
        "whitelisted: the MTA answers"
    );
    assert!(g.greydb(&["10.79.1.2"]).starts_with("WHITE|10.79.1.2|"));
    // Deleting the entry takes it out of the map again.
    g.greydb(&["-d", "10.79.1.2"]);
    assert!(
        pair.banner("10.79.1.2", mx).unwrap().text().contains("spamd"),
        "back on the tarpit"
    );

    for path in [
        dir.path(),
        &g.db_path(),
        &g.control_path(),
        &dir.path().join("greyd.db-wal"),
    ] {
        let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "owner of {}", path.display());
    }

    assert_eq!(g.daemon.terminate(), Some(0), "clean exit on SIGTERM");
    eventually("the programs to go", Duration::from_secs(5), || {
        !bpftool_lists("prog").contains("greyd_steer")
    });
    assert!(!pin_guard.0.exists(), "pins left behind in {}", pin_guard.0.display());
    assert_eq!(
        pair.banner("10.79.1.3", mx).unwrap().text(),
        "real MTA",
        "without greyd the MTA gets everyone"
    );
}

/// Start greyd as root with `user = "<user>"` (and `--firewall none`),
/// expecting a refusal: asserts exit status 1 and that neither the database
/// nor the control socket was made; returns stderr.
fn refused_start(user: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("greyd.toml");
    std::fs::write(&config, format!("user = \"{user}\"\n")).unwrap();
    let db = dir.path().join("db/greyd.db");
    let control = dir.path().join("greyd.sock");
    let out = Command::new(greyd_tests::bin("greyd"))
        .arg("--config")
        .arg(&config)
        .args(["-d", "--firewall", "none", "-l", "127.0.0.1", "-p"])
        .arg(greyd_tests::free_port().to_string())
        .arg("--db")
        .arg(&db)
        .arg("--control")
        .arg(&control)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !Path::new(&db).exists() && !control.exists(),
        "nothing made before the refusal"
    );
    stderr
}

#[test]
fn a_configured_user_that_does_not_exist_is_refused_before_anything_is_loaded() {
    if !have_root("greyd_missing_user") {
        return;
    }
    let missing = format!("_greydnone{}", std::process::id());
    let stderr = refused_start(&missing);
    assert!(
        stderr.contains(&format!("user {missing} (the `user` setting) does not exist")),
        "{stderr}"
    );
}
