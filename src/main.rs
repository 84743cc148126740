//! The `sessiongate` command: parse arguments, load the config, run. Nothing else.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: the request path allocates many small,
/// short-lived buffers (headers, bytes), and glibc's malloc/free was 16% of the
/// proxy's CPU time in the benchmark's profile (bench/results/perf.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use sessiongate::Config;

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
    Run {
        /// Take the listening sockets over from the running instance (which
        /// hands them over on SIGQUIT) instead of binding them: a restart
        /// without a refused connection. Needs server.upgrade_socket.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate the configuration and exit: 0 when valid, 1 with every problem printed.
    Check,
    /// Read a password from stdin (no echo on a terminal) and print its argon2id
    /// hash for the users file.
    HashPassword,
    /// Exit 0 when the running instance's admin listener answers `GET /healthz`
    /// with 200 within 2 s, 1 otherwise (a container HEALTHCHECK).
    Healthcheck,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sessiongate: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: our error types
/// already print their source (`listen ADDR: <io error>`), and `{:#}` would
/// print it a second time.
fn message(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::HashPassword) = cli.command {
        return hash_password();
    }
    let config = Config::load(&cli.config)?;
    match cli.command.unwrap_or(Command::Run { upgrade: false }) {
        Command::Check => {
            println!("{}: ok", cli.config.display());
            Ok(())
        }
        Command::Healthcheck => {
            sessiongate::healthcheck(config.admin_listen()).map_err(anyhow::Error::msg)
        }
        Command::Run { upgrade } => {
            sessiongate::init_logging(&config);
            let server = sessiongate::build(config, &cli.config, upgrade)?;
            server.run_forever()
        }
        Command::HashPassword => unreachable!("handled before loading the config"),
    }
}

fn hash_password() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        anyhow::ensure!(first == again, "the passwords differ");
        first
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    anyhow::ensure!(!password.is_empty(), "empty password");
    anyhow::ensure!(
        password.len() <= sessiongate::MAX_PASSWORD_LEN,
        "password longer than {} bytes",
        sessiongate::MAX_PASSWORD_LEN
    );
    let hash = sessiongate::hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
    println!("{hash}");
    Ok(())
}
