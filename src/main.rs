//! The `tidemark` command: parses arguments and runs a subcommand.

mod cli;

use clap::Parser;
use tracing_subscriber::filter::Targets;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long the allocator keeps freed memory before giving it back to the system, in
/// milliseconds (-1: until exit). Its default (10 ms) hands memory back between the dataflow's
/// batches, only to fault it in again zeroed: a quarter of `compute`'s time on a 1M-event log
/// went to the kernel clearing pages. `serve` gives memory back after a quiet second.
fn keep_freed_memory(ms: std::ffi::c_long) {
    /// `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (not among the crate's constants).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets one of mimalloc's options; any value is valid for this one.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, ms) }
}

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
    keep_freed_memory(if args.long_running() { 1000 } else { -1 });
    match cli::run(args) {
        Ok(code) => code,
        // The reader of our output went away (`tidemark compute | head`): nothing is wrong.
        Err(e) if e.chain().any(tidemark::console::is_broken_pipe) => {
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tidemark::say!("error: {}", said_once(&e));
            std::process::ExitCode::from(2)
        }
    }
}

/// The error and its causes, joined by `: ` as `{:#}` does, but each said once: a cause whose
/// text the message already holds (errors that quote their source and also keep it as their
/// `source`) is not repeated.
fn said_once(e: &anyhow::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::said_once;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the log: {0}")]
    struct Quoting(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the log")]
    struct Keeping(#[source] std::io::Error);

    #[test]
    fn each_cause_is_said_once() {
        let io = || std::io::Error::other("disk on fire");
        let quoting = anyhow::Error::new(Quoting(io())).context("serve");
        assert_eq!(
            said_once(&quoting),
            "serve: cannot open the log: disk on fire"
        );
        let keeping = anyhow::Error::new(Keeping(io())).context("serve");
        assert_eq!(
            said_once(&keeping),
            "serve: cannot open the log: disk on fire"
        );
    }
}
