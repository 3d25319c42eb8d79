//! `--firewall pf` against a recording stand-in for pfctl (this is not
//! OpenBSD): greyd loads its anchor, replaces its tables at start, batches
//! whitelist changes into single pfctl calls, and flushes the anchor on exit.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use greyd_tests::greyd::{Greyd, attempt, eventually};

/// A pfctl that appends its arguments and stdin to `log`.
fn stand_in(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let log = dir.join("pfctl.log");
    let script = dir.join("pfctl");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ echo \"ARGS $*\"; cat; echo END; }} >> {}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

fn calls(log: &std::path::Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.split("END\n")
        .filter(|c| !c.is_empty())
        .map(|c| {
            let (args, input) = c.split_once('\n').unwrap_or((c, ""));
            (args.trim_start_matches("ARGS ").to_string(), input.to_string())
        })
        .collect()
}

#[test]
fn pf_anchor_tables_and_batched_updates() {
    let dir = tempfile::tempdir().unwrap();
    let (pfctl, log) = stand_in(dir.path());
    std::fs::write(
        dir.path().join("greyd.toml"),
        format!("pfctl = \"{}\"\nnospamd = [\"192.0.2.0/24\"]\n", pfctl.display()),
    )
    .unwrap();
    let config = dir.path().join("greyd.toml").display().to_string();
    let mut g = Greyd::start(
        dir.path(),
        &["--config", &config, "--firewall", "pf", "-G", "1s:1h:1d", "-S", "0"],
    );
    let c = calls(&log);
    assert_eq!(c[0].0, "-a greyd -f -");
    assert!(
        c[0].1.contains(&format!("divert-to 127.0.0.1 port {}", g.port)),
        "{}",
        c[0].1
    );
    assert!(
        c.iter()
            .any(|(a, i)| a == "-a greyd -t nogreyd -T replace -f -" && i.contains("192.0.2.0/24"))
    );
    assert!(c.iter().any(|(a, _)| a == "-a greyd -t greyd-white -T replace -f -"));

    // Several whitelistings at once travel in one pfctl call.
    g.greydb(&["-a", "198.51.100.1", "198.51.100.2", "2001:db8::7"]);
    eventually("the batched add", Duration::from_secs(5), || {
        calls(&log).iter().any(|(a, i)| {
            a == "-a greyd -t greyd-white -T add -f -"
                && i.lines().collect::<Vec<_>>() == ["198.51.100.1", "198.51.100.2", "2001:db8::7"]
        })
    });
    // A promotion by the greylister reaches the table too.
    attempt(&g, "127.0.70.1", "a@b.example", "c@d.example");
    std::thread::sleep(Duration::from_millis(1100));
    attempt(&g, "127.0.70.1", "a@b.example", "c@d.example");
    eventually("the promotion", Duration::from_secs(5), || {
        calls(&log)
            .iter()
            .any(|(a, i)| a.ends_with("-T add -f -") && i.trim() == "127.0.70.1")
    });
    g.greydb(&["-d", "198.51.100.2"]);
    eventually("the delete", Duration::from_secs(5), || {
        calls(&log)
            .iter()
            .any(|(a, i)| a == "-a greyd -t greyd-white -T delete -f -" && i.trim() == "198.51.100.2")
    });
    g.daemon.terminate();
    assert_eq!(
        calls(&log).last().unwrap().0,
        "-a greyd -F all",
        "the anchor is flushed on exit"
    );
}
