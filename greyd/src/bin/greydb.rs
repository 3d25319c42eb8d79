//! `greydb`: list and change greyd's database (spamdb(8)'s role).
//!
//! With greyd running, requests go through its control socket so memory and
//! the firewall follow; otherwise greydb opens the database file itself.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use greyd::config::ToolSettings;
use greyd::control::{self, Client, EntryKind, Request, Response};
use greyd::db::Db;

#[derive(Parser)]
#[command(name = "greydb", version, about = "greyd database tool (spamdb's role)")]
struct Cli {
    /// Add or update the keys (WHITE by default; with -t TRAPPED, with -T SPAMTRAP).
    #[arg(short = 'a', conflicts_with = "delete")]
    add: bool,
    /// Delete the keys (WHITE by default; with -G GREY, -t TRAPPED, -T SPAMTRAP).
    #[arg(short = 'd')]
    delete: bool,
    /// Keys are GREY entries: an IP (all its tuples) or ip|helo|from|to. Only with -d.
    #[arg(short = 'G', conflicts_with_all = ["spamtrap", "trapped"])]
    grey: bool,
    /// Keys are SPAMTRAP addresses.
    #[arg(short = 'T', conflicts_with = "trapped")]
    spamtrap: bool,
    /// Keys are TRAPPED IP addresses.
    #[arg(short = 't')]
    trapped: bool,
    /// Print entries as JSON lines.
    #[arg(long)]
    json: bool,
    /// Print a running greyd's numbers, lists and sync peers as one JSON object.
    #[arg(long, conflicts_with_all = ["add", "delete", "grey", "spamtrap", "trapped"])]
    stats: bool,
    /// greyd's configuration file (for the database and socket paths and expiry times).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database file, used when greyd is not running.
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
    /// greyd's control socket.
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// IP addresses or spamtrap addresses; when listing, only matching entries are shown.
    keys: Vec<String>,
}

fn request(cli: &Cli) -> Result<Request> {
    if cli.stats {
        return Ok(Request::Stats);
    }
    if cli.grey && !cli.delete {
        bail!("-G deletes GREY entries and needs -d");
    }
    let kind = if cli.grey {
        EntryKind::Grey
    } else if cli.spamtrap {
        EntryKind::Spamtrap
    } else if cli.trapped {
        EntryKind::Trapped
    } else {
        EntryKind::White
    };
    let keys = cli.keys.clone();
    Ok(match (cli.add, cli.delete) {
        (true, _) => Request::Add { kind, keys },
        (_, true) => Request::Delete { kind, keys },
        _ if cli.spamtrap || cli.trapped => bail!("-T and -t need -a or -d"),
        _ => Request::Dump { keys },
    })
}

fn run(cli: &Cli) -> Result<()> {
    let settings = ToolSettings::load(cli.config.as_deref())?;
    let req = request(cli)?;
    let control = cli.control.clone().unwrap_or(settings.control);
    let response = match Client::connect(&control) {
        Ok(mut client) => client.request(&req)?,
        // Told to use a socket that does not answer: say so rather than edit the file behind greyd.
        Err(e) if cli.control.is_some() => return Err(e.into()),
        Err(_) => {
            let path = cli.db.clone().unwrap_or(settings.db);
            if !path.exists() {
                bail!(
                    "no database at {} and greyd is not running (no socket at {})",
                    path.display(),
                    control.display()
                );
            }
            let mut db = Db::open(&path)?;
            let now = greyd_shared::datetime::now();
            match db.transaction(|tx| Ok(control::apply(tx, req, &settings.rules, now))) {
                Ok(Ok((response, _))) => response,
                Ok(Err(e)) => Response::error(e),
                Err(e) => Response::error(e),
            }
        }
    };
    match response {
        Response::Entries { entries } => {
            let mut out = std::io::stdout().lock();
            for e in entries {
                use std::io::Write;
                if cli.json {
                    writeln!(out, "{}", serde_json::to_string(&e).context("json")?)?;
                } else {
                    writeln!(out, "{e}")?;
                }
            }
            Ok(())
        }
        Response::Stats(stats) => {
            println!("{}", serde_json::to_string_pretty(&stats).context("json")?);
            Ok(())
        }
        Response::Ok { .. } | Response::Lists { .. } => Ok(()),
        Response::Error { message } => bail!("{message}"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("greydb: {e:#}");
            ExitCode::FAILURE
        }
    }
}
