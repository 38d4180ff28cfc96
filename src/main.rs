//! The `tidemark` command: parses arguments and runs a subcommand.

mod cli;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TIDEMARK_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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
