//! `tidemark whois`: all identities of the person behind one identity, from an event log.

use std::process::ExitCode;

use super::log::{read_log, LogArgs, Track};

/// Arguments of `whois`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    log: LogArgs,
    /// The identity to look up, as TYPE:VALUE (for example `openid:o_42` or `user:u_42`).
    identity: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some((kind, value)) = args.identity.split_once(':') else {
        anyhow::bail!(
            "identity {:?} must be TYPE:VALUE, for example openid:o_42",
            args.identity
        );
    };
    let track = Track {
        identities: true,
        verdicts: false,
    };
    let mut finished = read_log(&args.log, track, true, |_, _, _, _| Ok(()))?;
    let out = finished.whois(kind, value);
    tidemark::console::print(&(serde_json::to_string_pretty(&out)? + "\n"))?;
    Ok(if out["found"] == true {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
