//! `cargo xtask`: the developer and CI tasks of the workspace.
//!
//! - `deps`: install what the tests need (Debian packages, Python packages,
//!   the eBPF toolchain, cargo-fuzz), idempotently;
//! - `build-ebpf`: build the eBPF programs alone;
//! - `test`: deps, build, fmt/clippy, the whole test suite, an OpenBSD
//!   build check, a short fuzz run;
//! - `install`: build and install greyd and mta on this host, or under a
//!   staging root (see install.rs);
//! - `demo`: the whole stack on loopback: mta (from `mtactl init`) behind
//!   greyd in proxy mode;
//! - `bench …`: the benchmarks.

mod bench;
mod bench_imap;
mod bench_relay;
mod bench_smtp;
mod demo;
mod deps;
mod install;
mod measure;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Developer and CI tasks for greyd")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the packages and tools the tests need (idempotent).
    Deps,
    /// Build the eBPF programs alone (greyd's build embeds them anyway).
    BuildEbpf,
    /// Install greyd and mta on this host (or under --root): programs, users,
    /// configuration, certificate, keys, service files. Idempotent.
    Install(install::InstallArgs),
    /// Run the whole stack on loopback: mta behind greyd in proxy mode.
    Demo,
    /// Benchmarks (release builds; they print figures, never fail on speed).
    #[command(subcommand)]
    Bench(bench::Bench),
    /// Everything CI checks: deps, fmt, clippy, build, tests, a short fuzz run.
    Test {
        /// Seconds per fuzz target (0 skips fuzzing).
        #[arg(long, default_value_t = 20)]
        fuzz_seconds: u64,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Deps => deps::install(),
        Task::BuildEbpf => build_ebpf(),
        Task::Test { fuzz_seconds } => test(fuzz_seconds),
        Task::Install(args) => install::install(args),
        Task::Demo => demo::run_demo(),
        Task::Bench(b) => bench::run_bench(b),
    }
}

/// The workspace root (the parent of xtask/).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Run a command; fail with its command line if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// The nightly cargo (through rustup's proxy), in the workspace root.
fn cargo_nightly() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly").current_dir(root());
    cmd
}

/// cargo, in the workspace root.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn test(fuzz_seconds: u64) -> Result<()> {
    deps::install()?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    run(cargo().args(["build", "--workspace", "--bins"]))?;
    let tests = run_tests()?;
    openbsd_check()?;
    if fuzz_seconds > 0 {
        fuzz(fuzz_seconds)?;
    }
    // One closing line for the whole run, whatever ran last.
    println!(
        "tests: {} passed, {} failed, {} skipped",
        tests.passed, tests.failed, tests.ignored
    );
    if tests.failed > 0 {
        bail!("{} tests failed", tests.failed);
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

/// `cargo test` over the workspace, echoing its output and adding up its result lines.
fn run_tests() -> Result<Tally> {
    let mut child = cargo()
        .args(["test", "--workspace", "--no-fail-fast"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let mut tally = Tally::default();
    let stdout = child.stdout.take().expect("piped stdout");
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let count = |word: &str| -> u64 {
                rest.split(';')
                    .find_map(|part| {
                        part.trim()
                            .trim_start_matches("ok. ")
                            .trim_start_matches("FAILED. ")
                            .strip_suffix(word)
                    })
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0)
            };
            tally.passed += count(" passed");
            tally.failed += count(" failed");
            tally.ignored += count(" ignored");
        }
    }
    let status = child.wait()?;
    if !status.success() && tally.failed == 0 {
        bail!("cargo test failed: {status}");
    }
    Ok(tally)
}

/// The daemons must keep building for OpenBSD (pf); Linux-only parts are cfg-gated.
fn openbsd_check() -> Result<()> {
    run(cargo_nightly()
        .args(["check", "-Z", "build-std", "--target", "x86_64-unknown-openbsd"])
        .args([
            "--target-dir",
            "target/openbsd",
            "-p",
            "greyd",
            "-p",
            "greyd-setup",
            "-p",
            "mta",
        ])
        // C dependencies (SQLite, aws-lc) are compiled here with the host's glibc headers,
        // which hide pthread_rwlock_t unless asked; only the Rust code is being checked.
        .env("CFLAGS_x86_64_unknown_openbsd", "-D_GNU_SOURCE"))
}

/// The same build greyd's build script does, into target/bpfel-unknown-none.
fn build_ebpf() -> Result<()> {
    run(cargo_nightly().args([
        "build",
        "-p",
        "greyd-ebpf",
        "--bins",
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--features",
        "programs",
    ]))?;
    println!(
        "{}",
        root().join("target/bpfel-unknown-none/release/greyd-ebpf").display()
    );
    Ok(())
}

/// Every crate's fuzz/ directory holds cargo-fuzz targets; run each briefly.
fn fuzz(seconds: u64) -> Result<()> {
    for krate in ["greyd", "mta", "setup"] {
        let dir = root().join(krate);
        if !dir.join("fuzz/Cargo.toml").exists() {
            continue;
        }
        let out = Command::new("cargo")
            .args(["+nightly", "fuzz", "list"])
            .current_dir(&dir)
            .output()
            .context("cargo fuzz list")?;
        if !out.status.success() {
            bail!(
                "cargo fuzz list in {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for target in String::from_utf8_lossy(&out.stdout).lines() {
            println!("fuzz {krate}/{target} for {seconds}s");
            run(Command::new("cargo")
                // Without sanitizers the build is minutes shorter; the code under test is safe Rust.
                .args(["+nightly", "fuzz", "run", "--sanitizer", "none", target, "--"])
                .arg(format!("-max_total_time={seconds}"))
                // The fuzz targets never load the kernel programs; skip building them again.
                .env("GREYD_NO_EBPF", "1")
                .current_dir(&dir))?;
        }
    }
    Ok(())
}
