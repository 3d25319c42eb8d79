//! What the other tests call from outside the workspace is installed, so a
//! fresh machine fails here, naming the missing piece, instead of skipping
//! or failing somewhere deep in an unrelated test. `cargo xtask deps`
//! installs everything listed in `.ci/apt-packages.txt`.

use std::process::Command;

fn apt_packages() -> Vec<String> {
    let list = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/apt-packages.txt"))
        .expect(".ci/apt-packages.txt");
    list.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

#[test]
fn every_listed_debian_package_is_installed() {
    let missing: Vec<String> = apt_packages().into_iter().filter(|p| !installed(p)).collect();
    assert!(
        missing.is_empty(),
        "not installed: {} (run `cargo xtask deps`)",
        missing.join(" ")
    );
}

/// Commands the end-to-end tests and benchmarks run, each from a listed package.
#[test]
fn every_external_command_the_tests_run_is_on_path() {
    let commands = [
        "swaks",
        "curl",
        "mbsync",
        "python3",
        "ip",
        "nft",
        "bpftool",
        "smtp-source",
        "smtp-sink",
        "postconf",
        "nsenter",
        "setpriv",
        "runuser",
        "useradd",
        "chromium",
        "chromedriver",
    ];
    let missing: Vec<&str> = commands
        .into_iter()
        .filter(|c| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {c} || test -x /usr/sbin/{c}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    assert!(missing.is_empty(), "missing commands: {}", missing.join(" "));
}

/// swaks loads TLS and AUTH support from Perl modules that Debian only
/// recommends; without them `--tls` and `--auth` fail at run time.
#[test]
fn swaks_can_do_tls_and_auth() {
    let out = Command::new("swaks").arg("--support").output().expect("swaks");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for feature in ["TLS", "Basic AUTH", "AUTH CRAM-MD5"] {
        assert!(
            text.contains(&format!("=== {feature} supported")),
            "swaks lacks {feature}:\n{text}"
        );
    }
}
