//! `--firewall ebpf` in network namespaces the test creates: sk_lookup sends
//! non-whitelisted sources to greyd and whitelisted ones to the MTA, XDP
//! drops hard-blocked sources, the per-CPU counters match, whitelisted hosts
//! keep reaching the MTA while greyd restarts, and nothing is left behind.
//!
//! Needs root, BPF and the eBPF toolchain greyd was built with; under CI a
//! missing piece fails the test.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use greyd_tests::ebpf::{PinDir, bpftool_lists, built_with_ebpf, config_lines, start_greyd};
use greyd_tests::greyd::{Greyd, eventually};
use greyd_tests::netns::{Pair, have_root, real_mta};

/// Sum over CPUs of each counter, read with bpftool as an administrator would.
fn counters(pin_dir: &Path) -> Vec<u64> {
    let out = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(pin_dir.join("GREYD_COUNTERS"))
        .output()
        .expect("run bpftool");
    assert!(
        out.status.success(),
        "bpftool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let byte = |v: &serde_json::Value| u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|cpu| {
                    cpu["value"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .rev()
                        .fold(0, |acc, b| acc << 8 | byte(b))
                })
                .sum()
        })
        .collect()
}

#[test]
fn ebpf_steers_blocks_counts_survives_restart_and_cleans_up() {
    if !have_root("ebpf_steers") || !built_with_ebpf("ebpf_steers") {
        return;
    }
    let pair = Pair::new(&["10.78.1.1"], &["10.78.1.2", "10.78.1.3", "10.78.1.4"]);
    real_mta(&pair.server, 25);
    let dir = tempfile::tempdir().unwrap();
    let pin_guard = PinDir::for_this_process();
    let pin_dir = pin_guard.0.clone();
    let write_config = |keep: bool| {
        std::fs::write(
            dir.path().join("greyd.toml"),
            format!(
                "{}keep_firewall = {keep}\nexpire_interval = \"1s\"\n",
                config_lines(&pair, &pin_guard)
            ),
        )
        .unwrap()
    };
    write_config(true);
    let mut g = start_greyd(&pair, dir.path());
    let mx: SocketAddr = "10.78.1.1:25".parse().unwrap();
    assert!(
        pin_dir.join("GREYD_WHITE").exists() && pin_dir.join("link_steer").exists(),
        "maps and links pinned"
    );

    // Not whitelisted: steered to greyd, greylisted, then whitelisted on retry.
    assert_eq!(pair.attempt("10.78.1.2", mx), 451);
    std::thread::sleep(Duration::from_millis(1100));
    pair.attempt("10.78.1.2", mx);
    assert_eq!(
        pair.banner("10.78.1.2", mx).unwrap().text(),
        "real MTA",
        "whitelisted: the MTA answers"
    );
    assert!(
        pair.banner("10.78.1.3", mx).unwrap().text().contains("spamd"),
        "others still reach greyd"
    );
    let c = counters(&pin_dir);
    assert_eq!(
        (c[0], c[1]),
        (3, 1),
        "steered 3 connections to greyd, passed 1 to the MTA: {c:?}"
    );

    // A whitelisted host that keeps talking to the MTA has its entry refreshed
    // from the kernel's last-seen map (spamlogd's inbound role).
    let pass_time = |g: &Greyd| g.greydb(&["10.78.1.2"]).trim().split('|').nth(5).unwrap().to_string();
    std::thread::sleep(Duration::from_millis(2100));
    let before = pass_time(&g);
    pair.banner("10.78.1.2", mx).unwrap();
    eventually("the white entry to be refreshed", Duration::from_secs(5), || {
        pass_time(&g) != before
    });

    // A hard block is dropped by XDP before TCP sees it.
    let resp =
        g.control(r#"{"op":"load_list","name":"hard","kind":"black","hard_block":true,"entries":["10.78.1.4/32"]}"#);
    assert!(resp.contains("\"ok\""), "{resp}");
    if let Ok(mut s) = pair.connect("10.78.1.4", mx) {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert!(s.read(&mut [0u8; 1]).is_err(), "a blocked source must get nothing");
    }
    let c = counters(&pin_dir);
    assert!(c[2] >= 1, "XDP counted the dropped packets: {c:?}");
    assert_eq!(
        c[1], 2,
        "the MTA got exactly the whitelisted host's two connections: {c:?}"
    );

    // greyd stops (keeping its pins): whitelisted hosts still reach the MTA, unknown ones are refused.
    g.daemon.terminate();
    assert_eq!(pair.banner("10.78.1.2", mx).unwrap().text(), "real MTA");
    assert!(
        pair.connect("10.78.1.3", mx).is_err(),
        "no greyd socket: unknown sources are refused"
    );
    assert!(counters(&pin_dir)[3] >= 1, "refusals counted");

    // Restarted, greyd takes over its pinned maps and link again.
    g.restart();
    assert!(pair.banner("10.78.1.3", mx).unwrap().text().contains("spamd"));
    assert_eq!(pair.banner("10.78.1.2", mx).unwrap().text(), "real MTA");

    // Told not to keep them, greyd removes pins and programs on exit.
    write_config(false);
    g.restart();
    g.daemon.terminate();
    eventually("the programs to go", Duration::from_secs(5), || {
        !bpftool_lists("prog").contains("greyd_steer")
    });
    assert!(!pin_dir.exists(), "pins left behind in {}", pin_dir.display());
    assert_eq!(
        pair.banner("10.78.1.3", mx).unwrap().text(),
        "real MTA",
        "without greyd the MTA gets everyone"
    );
}
