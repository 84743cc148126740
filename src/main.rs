//! The `sessiongate` command: parse arguments, load the config, run. Nothing else.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sessiongate::config::Config;

/// An authenticating reverse proxy: signed session cookies, route rules, a trusted X-User header.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The configuration file.
    #[arg(long, short, global = true, default_value = "proxy.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Run,
    /// Validate the configuration and exit: 0 when valid, 1 with every problem printed.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sessiongate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.config)?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => {
            println!("{}: ok", cli.config.display());
            Ok(())
        }
        Command::Run => {
            sessiongate::server::init_logging(&config);
            tracing::info!(
                listen = ?config.listen,
                upstreams = config.upstreams.len(),
                "sessiongate starting"
            );
            let server = sessiongate::server::build(config)?;
            server.run_forever()
        }
    }
}
