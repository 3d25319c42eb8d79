//! Installs what the tests need, idempotently: the Debian packages listed in
//! `.ci/apt-packages.txt`, the Python packages in `.ci/python-packages.txt`,
//! the nightly toolchain's pieces and cargo-fuzz.

use std::process::Command;

use anyhow::Result;

use crate::{root, run};

/// Non-comment, non-empty lines of a list file under `.ci/`.
fn list(name: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(root().join(".ci").join(name))?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect())
}

fn have_deb(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn succeeds(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd).args(args).output().is_ok_and(|o| o.status.success())
}

pub fn install() -> Result<()> {
    let missing: Vec<String> = list("apt-packages.txt")?.into_iter().filter(|p| !have_deb(p)).collect();
    if !missing.is_empty() {
        println!("xtask deps: apt-get install {}", missing.join(" "));
        run(Command::new("apt-get").arg("update").arg("-q"))?;
        // postfix (for smtp-source in `bench smtp`) must not configure and start a system MTA on port 25.
        let mut preseed = Command::new("debconf-set-selections")
            .stdin(std::process::Stdio::piped())
            .spawn()?;
        std::io::Write::write_all(
            &mut preseed.stdin.take().expect("piped"),
            b"postfix postfix/main_mailer_type select No configuration\n",
        )?;
        preseed.wait()?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    let py = list("python-packages.txt")?;
    if !py.is_empty() {
        run(Command::new("python3").args(["-m", "pip", "install", "-q"]).args(&py))?;
    }
    if !succeeds("rustup", &["--version"]) {
        anyhow::bail!("rustup is needed for the nightly toolchain (fuzzing, eBPF)");
    }
    if !succeeds("rustc", &["+nightly", "--version"]) {
        run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    // The eBPF toolchain: rust-src for -Z build-std, and bpf-linker built against Debian's LLVM 22
    // (without LLVM_PREFIX it finds LLVM 14 and fails to link).
    let installed = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()?;
    if !String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    }
    if !succeeds("bpf-linker", &["--version"]) {
        println!("xtask deps: cargo install bpf-linker (about 4 minutes)");
        run(Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22"))?;
    }
    if !succeeds("cargo", &["+nightly", "fuzz", "--version"]) {
        println!("xtask deps: cargo install cargo-fuzz");
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}
