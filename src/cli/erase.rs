//! `tidemark erase`: erases a person from a stopped server's data directory.

use std::path::PathBuf;
use std::process::ExitCode;
use tidemark::Engine;

/// Arguments of `erase`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The data directory of `tidemark serve` (stop the server first, or use
    /// `DELETE /v1/persons/TYPE/VALUE` on the running one).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// The configuration the server runs with (its metric and rule sections must match the
    /// data directory's checkpoint).
    #[arg(long)]
    config: Option<PathBuf>,
    /// One identity of the person, as TYPE:VALUE (for example `phone:13800000000`); every
    /// identity linked to it is erased too.
    identity: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some((kind, value)) = args.identity.split_once(':') else {
        anyhow::bail!(
            "identity {:?} must be TYPE:VALUE, for example openid:o_42",
            args.identity
        );
    };
    if !args.data.is_dir() {
        anyhow::bail!(
            "{} is not a directory; give the data directory of tidemark serve (serve.data_dir or --data)",
            args.data.display()
        );
    }
    let config = super::load_config(args.config.as_ref())?;
    let live = Engine::builder(config).data_dir(&args.data).start()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (kind, value) = (kind.to_string(), value.to_string());
    let answer = runtime.block_on(async {
        let answer = live.erase(kind.clone(), value).await;
        live.shutdown().await?;
        answer
    })?;
    match answer? {
        Some(person) => {
            person.forget_sent_actions(&args.data)?;
            let doc = person.erased.to_json();
            tidemark::console::print(&(serde_json::to_string_pretty(&doc)? + "\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!(
                "no accepted event in {} names this {kind}; nothing was erased",
                args.data.display()
            );
            Ok(ExitCode::from(1))
        }
    }
}
