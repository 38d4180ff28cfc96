//! The `tidemark` command: parses arguments and runs a subcommand.

mod cli;

use clap::Parser;
use tracing_subscriber::filter::Targets;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Logs to stderr, filtered by `TIDEMARK_LOG` (`warn` when unset): a level, or comma-separated
/// `target=level` directives such as `warn,tidemark::live=debug`.
fn logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let default = || Targets::new().with_default(tracing::Level::WARN);
    let filter = match std::env::var("TIDEMARK_LOG") {
        Ok(text) => text.parse::<Targets>().unwrap_or_else(|e| {
            tidemark::say!(
                "warning: TIDEMARK_LOG={text:?} is not a log filter ({e}); logging warnings"
            );
            default()
        }),
        Err(_) => default(),
    };
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(filter)
        .init();
}

fn main() -> std::process::ExitCode {
    logging();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        // The reader of our output went away (`tidemark compute | head`): nothing is wrong.
        Err(e) if e.chain().any(tidemark::console::is_broken_pipe) => {
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tidemark::say!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
