//! `greyd`: the tarpit and greylister daemon (spamd's role).

use anyhow::Result;
use clap::Parser;
use greyd::config::{Cli, Config};
use greyd_shared::logging::Destination;

fn main() -> Result<()> {
    let cli = Cli::parse();
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("greyd: {e}");
            std::process::exit(2);
        }
    };
    if cli.check_config {
        println!(
            "{}: ok",
            cli.config
                .as_deref()
                .unwrap_or(std::path::Path::new("(no file)"))
                .display()
        );
        return Ok(());
    }
    // Under systemd (stderr is the journal) greyd stays in the foreground as a Type=notify service.
    let destination = Destination::choose(config.foreground);
    if destination == Destination::Syslog {
        nix::unistd::daemon(false, false)?;
    }
    greyd_shared::logging::init(c"greyd", "RUST_LOG", destination, config.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Err(e) = runtime.block_on(greyd::server::run(config)) {
        tracing::error!("{e:#}");
        if destination == Destination::Syslog {
            eprintln!("greyd: {e:#}");
        }
        std::process::exit(1);
    }
    Ok(())
}
