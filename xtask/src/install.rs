//! `cargo xtask install`: build greyd and mta and install them on this host
//! (or under `--root`, a packager's DESTDIR): the programs, the system users,
//! greyd's configuration and spamd.conf, the service files (systemd units on
//! Linux, rc.d scripts on OpenBSD), then `mtactl init --system` for mta's
//! configuration, classic files, certificate and keys. Idempotent: what
//! exists is left alone, an edited file is kept and reported.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use greyd_shared::install::{Installer, Owner, Ownership};

use crate::{root, run};

#[derive(clap::Args)]
pub struct InstallArgs {
    /// Where the programs and service files go (PREFIX/sbin, PREFIX/lib/systemd/system).
    #[arg(long, default_value = "/usr/local")]
    prefix: PathBuf,
    /// Stage everything under this directory (DESTDIR) instead of /; users are not created.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Host name for greyd's banner, mta's greeting and the certificate; default: the system's.
    #[arg(long)]
    hostname: Option<String>,
    /// Mail domain mta delivers locally; default: the host name.
    #[arg(long)]
    domain: Option<String>,
    /// Print each action; write nothing (the build still runs, into target/).
    #[arg(long)]
    dry_run: bool,
    /// Build optimised binaries (for a real host; the tests use the debug build).
    #[arg(long)]
    release: bool,
    /// Install the binaries found in DIR instead of building them.
    #[arg(long, conflicts_with = "release")]
    bin_dir: Option<PathBuf>,
}

/// The daemon users: greyd and mta become them after binding (mta.toml's
/// `user` is `_mta`, and mta refuses to start as root without it).
const GREYD_USER: &str = "_greyd";
const MTA_USER: &str = "_mta";

/// The programs, and the directory under the prefix each goes to.
const PROGRAMS: [(&str, &str); 8] = [
    ("greyd", "sbin"),
    ("greydb", "sbin"),
    ("greyd-setup", "sbin"),
    ("mta", "sbin"),
    ("mtactl", "sbin"),
    ("sendmail", "sbin"),
    ("newaliases", "sbin"),
    ("mailq", "bin"),
];

const SYSTEMD_UNITS: [(&str, &str); 4] = [
    ("greyd.service", include_str!("../dist/systemd/greyd.service")),
    ("mta.service", include_str!("../dist/systemd/mta.service")),
    (
        "greyd-setup.service",
        include_str!("../dist/systemd/greyd-setup.service"),
    ),
    ("greyd-setup.timer", include_str!("../dist/systemd/greyd-setup.timer")),
];

const RC_SCRIPTS: [(&str, &str); 2] = [
    ("greyd", include_str!("../dist/openbsd/greyd")),
    ("mta", include_str!("../dist/openbsd/mta")),
];

/// greyd.toml for this host: the kernel filter of the system, the control
/// socket in the unit's RuntimeDirectory (rc.d: /var/run), the database
/// and user the defaults name.
fn greyd_toml(hostname: Option<&str>) -> String {
    let (firewall, control) = if cfg!(target_os = "openbsd") {
        ("pf", "/var/run/greyd.sock")
    } else {
        ("ebpf", "/run/greyd/greyd.sock")
    };
    let mut text = format!(
        "# written by `cargo xtask install`; README.md (greyd) documents every key.\n\
         # Connections to port 25 from sources not whitelisted are steered to greyd;\n\
         # whitelisted ones reach mta.\n\
         firewall = \"{firewall}\"\n\
         protected_ports = [25]\n\
         # Whitelisted hosts keep reaching mta while greyd restarts.\n\
         keep_firewall = true\n\
         db = \"/var/db/greyd/greyd.db\"\n\
         control = \"{control}\"\n\
         user = \"{GREYD_USER}\"\n"
    );
    if let Some(h) = hostname {
        text.push_str(&format!("hostname = \"{h}\"\n"));
    }
    text
}

pub fn install(args: InstallArgs) -> Result<()> {
    if !args.prefix.is_absolute() {
        bail!("--prefix must be an absolute path, not {}", args.prefix.display());
    }
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => build(args.release)?,
    };
    let staging = args.root.as_deref();
    let install = Installer::new(staging.unwrap_or(Path::new("/")), args.dry_run);
    for (name, dir) in PROGRAMS {
        install.program(&bin_dir.join(name), &args.prefix.join(dir).join(name))?;
    }
    let greyd_owner = system_user(&install, staging, GREYD_USER)?;
    system_user(&install, staging, MTA_USER)?;
    let greyd = Ownership::Account(GREYD_USER, greyd_owner.as_ref());

    install.dir(Path::new("/etc/greyd"), 0o755, Ownership::Root)?;
    install.config(
        Path::new("/etc/greyd/greyd.toml"),
        greyd_toml(args.hostname.as_deref()).as_bytes(),
        0o644,
        Ownership::Root,
    )?;
    install.dir(Path::new("/etc/mail"), 0o755, Ownership::Root)?;
    install.config(
        Path::new("/etc/mail/spamd.conf"),
        include_bytes!("../dist/spamd.conf"),
        0o644,
        Ownership::Root,
    )?;
    install.dir(Path::new("/var/db/greyd"), 0o750, greyd)?;
    install.dir(Path::new("/var/db/greyd/lists"), 0o750, greyd)?;

    let prefix = args.prefix.to_string_lossy();
    if cfg!(target_os = "openbsd") {
        install.dir(Path::new("/etc/rc.d"), 0o755, Ownership::Root)?;
        for (name, text) in RC_SCRIPTS {
            let text = text.replace("@PREFIX@", &prefix);
            install.config(
                &Path::new("/etc/rc.d").join(name),
                text.as_bytes(),
                0o555,
                Ownership::Root,
            )?;
        }
    } else {
        let units = args.prefix.join("lib/systemd/system");
        for (name, text) in SYSTEMD_UNITS {
            let text = text.replace("@PREFIX@", &prefix);
            install.config(&units.join(name), text.as_bytes(), 0o644, Ownership::Root)?;
        }
        install.config(
            &args.prefix.join("lib/sysusers.d/greyd.conf"),
            include_bytes!("../dist/sysusers.conf"),
            0o644,
            Ownership::Root,
        )?;
    }

    let mut init = Command::new(bin_dir.join("mtactl"));
    init.args(["init", "--system"]);
    if let Some(r) = staging {
        init.arg("--root").arg(r);
    }
    if let Some(h) = &args.hostname {
        init.args(["--hostname", h]);
    }
    if let Some(d) = &args.domain {
        init.args(["--domain", d]);
    }
    if args.dry_run {
        init.arg("--dry-run");
    }
    run(&mut init)?;
    if staging.is_none() && !args.dry_run {
        if cfg!(target_os = "openbsd") {
            println!(
                "next: add `anchor \"greyd\"` to /etc/pf.conf, then rcctl enable greyd mta && rcctl start greyd mta"
            );
        } else {
            println!("next: systemctl daemon-reload && systemctl enable --now greyd mta greyd-setup.timer");
        }
    }
    Ok(())
}

/// `cargo build` of the three packages' programs; their directory.
fn build(release: bool) -> Result<PathBuf> {
    let mut cmd = crate::cargo();
    cmd.args(["build", "-p", "greyd", "-p", "greyd-setup", "-p", "mta", "--bins"]);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd)?;
    Ok(root().join("target").join(if release { "release" } else { "debug" }))
}

/// Make the system account `name` (and its group) if it is missing; its
/// entry. Under a staging root users are not made: they belong to the host
/// the package is installed on, whose package scripts (or systemd-sysusers,
/// from the sysusers.d file) create them; writing DESTDIR/etc/passwd would
/// replace that host's file.
fn system_user(install: &Installer, staging: Option<&Path>, name: &str) -> Result<Option<Owner>> {
    let existing = Owner::lookup(name);
    if existing.is_some() {
        println!("{:>12} user {name}", "unchanged");
        return Ok(existing);
    }
    if staging.is_some() {
        println!(
            "{:>12} user {name}: the target host creates it (sysusers.d file installed)",
            "skipped"
        );
        return Ok(None);
    }
    if install.dry_run() {
        println!("{:>12} user {name}", "would create");
        return Ok(None);
    }
    let mut useradd = Command::new("useradd");
    if cfg!(target_os = "openbsd") {
        useradd.args([
            "-d",
            "/var/empty",
            "-s",
            "/sbin/nologin",
            "-L",
            "daemon",
            "-c",
            name,
            name,
        ]);
    } else {
        useradd.args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            name,
            name,
        ]);
    }
    run(&mut useradd).context("creating a system user")?;
    println!("{:>12} user {name}", "created");
    Ok(Owner::lookup(name))
}
