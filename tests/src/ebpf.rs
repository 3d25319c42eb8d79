//! What the `--firewall ebpf` tests share: whether greyd was built with its
//! programs, a pin directory of the test's own that is removed even when the
//! test fails, greyd started in a namespace pair, and what bpftool lists.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::greyd::{Greyd, QUICK_GREYLISTING};
use crate::netns::Pair;

/// Whether this greyd build has its eBPF programs; under CI it must.
pub fn built_with_ebpf(test: &str) -> bool {
    let version = Command::new(crate::bin("greyd")).arg("--version").output().unwrap();
    let built = String::from_utf8_lossy(&version.stdout).contains("nftables ebpf");
    if !built {
        assert!(
            std::env::var_os("CI").is_none(),
            "under CI greyd must be built with its eBPF programs ({test})"
        );
        eprintln!("skipping {test}: greyd was built without eBPF (`cargo xtask deps` installs the toolchain)");
    }
    built
}

/// A pin directory under /sys/fs/bpf for this test process, removed on drop
/// so no program stays attached through a pinned link.
pub struct PinDir(pub PathBuf);

impl PinDir {
    pub fn for_this_process() -> PinDir {
        PinDir(PathBuf::from(format!("/sys/fs/bpf/greyd-test-{}", std::process::id())))
    }
}

/// The greyd.toml lines every eBPF test needs: XDP on the server's end of
/// `pair`, maps and links under `pins`.
pub fn config_lines(pair: &Pair, pins: &PinDir) -> String {
    format!(
        "xdp_interfaces = [\"{}\"]\nbpf_pin_dir = \"{}\"\n",
        pair.server_if,
        pins.0.display()
    )
}

/// greyd with `--firewall ebpf` on port 8025 of `pair`'s server namespace,
/// reading `dir/greyd.toml` (written by the caller, and rewritable before a
/// restart), with a 1 s pass time and no stutter.
pub fn start_greyd(pair: &Pair, dir: &Path) -> Greyd {
    let config = dir.join("greyd.toml").display().to_string();
    let mut args = vec!["--config", &config, "--firewall", "ebpf"];
    args.extend(QUICK_GREYLISTING);
    Greyd::start_in(Some(&pair.server), dir, 8025, &args)
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `bpftool <what> list` (prog, link, map) as text.
pub fn bpftool_lists(what: &str) -> String {
    String::from_utf8(Command::new("bpftool").args([what, "list"]).output().unwrap().stdout).unwrap()
}
