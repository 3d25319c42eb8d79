//! `greyd`: the tarpit and greylister daemon (spamd's role).

use anyhow::Result;
use clap::Parser;
use greyd::config::{Cli, Config};

fn main() -> Result<()> {
    let cli = Cli::parse();
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("greyd: {e}");
            std::process::exit(2);
        }
    };
    if !config.foreground {
        nix::unistd::daemon(false, false)?;
    }
    greyd_shared::logging::init(c"greyd", "RUST_LOG", config.foreground, config.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let foreground = config.foreground;
    if let Err(e) = runtime.block_on(greyd::server::run(config)) {
        tracing::error!("{e:#}");
        if !foreground {
            eprintln!("greyd: {e:#}");
        }
        std::process::exit(1);
    }
    Ok(())
}
