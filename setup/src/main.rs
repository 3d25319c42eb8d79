//! `greyd-setup [-bDdn] [-f config]`: fetch the configured lists and load them into greyd.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use greyd::control::Client;
use greyd_setup::cache::{self, Cache};
use greyd_setup::conf::Conf;
use greyd_setup::fetch::Limits;
use greyd_setup::plan::{Options, Plan, plan};
use greyd_setup::tomlconf::Settings;
use greyd_setup::{conf, load, tomlconf};

const DEFAULT_CONF: &str = "/etc/mail/spamd.conf";
const DEFAULT_CONTROL: &str = "/var/run/greyd.sock";

#[derive(Parser)]
#[command(version, about = "Fetch black and white lists and load them into greyd")]
struct Args {
    /// Also block the listed sources in the kernel filter.
    #[arg(short = 'b')]
    hard_block: bool,
    /// Run in the background.
    #[arg(short = 'D')]
    daemonize: bool,
    /// Debug output.
    #[arg(short = 'd')]
    debug: bool,
    /// Dry run: print what would be loaded; greyd and the cache are left alone.
    #[arg(short = 'n')]
    dry_run: bool,
    /// spamd.conf(5) file, or a TOML file (name ending in .toml) with a [setup] section.
    #[arg(short = 'f', default_value = DEFAULT_CONF)]
    config: PathBuf,
    /// greyd's control socket [default: the TOML `control`, else /var/run/greyd.sock].
    #[arg(long)]
    control: Option<PathBuf>,
    /// Where the last good copy of each list is kept [default: the TOML `cache`, else /var/db/greyd/lists].
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Largest list accepted, in bytes, before and after decompression.
    #[arg(long, default_value_t = Limits::default().max_bytes)]
    max_bytes: u64,
    /// Seconds a download or command may take.
    #[arg(long, default_value_t = Limits::default().timeout.as_secs())]
    timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let terminal = std::io::stderr().is_terminal() && !args.daemonize;
    // From cron (no terminal) only warnings and errors are logged, so cron mails only trouble.
    let level = match (args.debug, terminal) {
        (true, _) => "debug",
        (false, true) => "info",
        (false, false) => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(terminal)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .init();
    match run(&args, terminal) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ok(false) when a source failed but the run went on.
fn run(args: &Args, terminal: bool) -> Result<bool> {
    let text = std::fs::read_to_string(&args.config).with_context(|| format!("reading {}", args.config.display()))?;
    let (conf, settings): (Conf, Settings) = if args.config.extension().is_some_and(|e| e == "toml") {
        tomlconf::parse(&text)
    } else {
        conf::parse(&text).map(|c| (c, Settings::default())).map_err(Into::into)
    }
    .with_context(|| format!("in {}", args.config.display()))?;
    if args.daemonize {
        // Before any thread exists (reqwest starts some), as fork requires.
        // stderr stays open: with no syslog writer, it is where failures are told.
        nix::unistd::daemon(false, true).context("daemon")?;
    }
    let opts = Options {
        limits: Limits {
            max_bytes: args.max_bytes,
            timeout: Duration::from_secs(args.timeout),
        },
        cache: Cache::new(
            args.cache
                .clone()
                .or(settings.cache)
                .unwrap_or_else(|| cache::DEFAULT_DIR.into()),
        ),
        update_cache: !args.dry_run,
        progress: terminal,
    };
    let plan = plan(&conf, &opts);
    if args.dry_run {
        print_plan(&plan, args.hard_block);
    } else {
        let socket = args
            .control
            .clone()
            .or(settings.control)
            .unwrap_or_else(|| DEFAULT_CONTROL.into());
        let mut client = Client::connect(&socket)?;
        let done = load::load(&mut client, &plan, args.hard_block)?;
        tracing::info!(
            "{} lists loaded, {} dropped, {} malformed lines skipped, {} sources failed",
            done.loaded.len(),
            done.dropped.len(),
            plan.malformed,
            plan.failures.len()
        );
    }
    Ok(plan.failures.is_empty())
}

/// One header line per list, then its nets, one a line.
fn print_plan(plan: &Plan, hard_block: bool) {
    for list in &plan.load {
        println!(
            "list {} black{} {} nets message {:?}",
            list.name,
            if hard_block { " hard-block" } else { "" },
            list.nets.len(),
            list.message
        );
        for net in &list.nets {
            println!("{net}");
        }
    }
}
