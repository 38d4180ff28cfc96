//! `tidemark serve`: the live service over HTTP (and MQTT), with an optional demo source.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tidemark::demo::DemoOptions;
use tidemark::server::{start, ServeOptions};

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (TOML); without it the defaults apply.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listen on this address (overrides serve.listen), e.g. 127.0.0.1:7878; port 0 picks one.
    #[arg(long)]
    listen: Option<String>,
    /// Read events from this MQTT broker and publish metrics to it (overrides mqtt.url).
    #[arg(long, value_name = "mqtt://HOST:PORT")]
    mqtt: Option<String>,
    /// MQTT topic filter to read events from (repeatable; overrides mqtt.topics).
    #[arg(long = "mqtt-topic")]
    mqtt_topics: Vec<String>,
    /// Play the built-in generator's shop in accelerated time, without end, so the dashboard moves at once.
    #[arg(long)]
    demo: bool,
    /// Demo: simulated time per real time.
    #[arg(long, default_value_t = 1800.0)]
    demo_speed: f64,
    /// Demo: persons arriving over its first 28 days (and as many a day after them).
    #[arg(long, default_value_t = 4000)]
    demo_persons: u64,
    /// Open the dashboard in the default browser once the server listens.
    #[arg(long)]
    open: bool,
    /// Dataflow worker threads (default: the cores less one for ingest, at least 1).
    #[arg(short = 'w', long, default_value_t = super::default_workers(), value_parser = super::workers)]
    workers: usize,
    /// Data directory (overrides serve.data_dir; default tidemark-data beside the config, or in
    /// the working directory without one; a fresh temporary one with --demo).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    #[command(flatten)]
    cluster: super::cluster::ClusterArgs,
}

/// The data directory: `--data`, else `serve.data_dir` (relative to the config's directory),
/// else `tidemark-data` there; with `--demo` and neither given, a fresh temporary directory.
fn data_dir(args: &Args, configured: Option<&str>) -> anyhow::Result<PathBuf> {
    if let Some(d) = &args.data {
        return Ok(d.clone());
    }
    let base = args
        .config
        .as_ref()
        .and_then(|c| c.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    match configured {
        Some(d) => Ok(base.join(d)),
        None if args.demo => {
            let dir = std::env::temp_dir().join(format!(
                "tidemark-demo-{}-{}",
                std::process::id(),
                jiff::Timestamp::now().as_millisecond()
            ));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Ok(dir)
        }
        None => Ok(base.join("tidemark-data")),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = match (&args.config, args.demo) {
        (None, true) => tidemark::config::Config::from_toml(tidemark::demo::DEMO_CONFIG)
            .context("the built-in demo configuration")?,
        _ => super::load_config(args.config.as_ref())?,
    };
    if let Some(listen) = &args.listen {
        config.serve.listen =
            tidemark::config::parse_listen(listen).map_err(|e| anyhow::anyhow!("--listen: {e}"))?;
    }
    if let Some(url) = &args.mqtt {
        config.mqtt.url = Some(
            tidemark::config::parse_mqtt_url(url).map_err(|e| anyhow::anyhow!("--mqtt: {e}"))?,
        );
    }
    if !args.mqtt_topics.is_empty() {
        if args.mqtt_topics.iter().any(|t| t.is_empty()) {
            anyhow::bail!("--mqtt-topic must be a non-empty topic filter, e.g. tidemark/events/#");
        }
        config.mqtt.topics = args.mqtt_topics.clone();
    }
    if !(args.demo_speed > 0.0 && args.demo_speed.is_finite()) {
        anyhow::bail!("--demo-speed must be a positive number, e.g. 1800");
    }
    let demo = args.demo.then(|| {
        let zone = config.calendar.zone().clone();
        DemoOptions {
            persons: args.demo_persons,
            days: 28,
            history_days: 21,
            speed: args.demo_speed,
            seed: 1,
            last_day: jiff::Timestamp::now().to_zoned(zone.clone()).date(),
            timezone: zone,
        }
    });
    let cluster = args.cluster.cluster(Some(&config.cluster))?;
    if cluster.is_some() && args.demo {
        anyhow::bail!("--demo runs on one process: leave out --processes, --process and --peers (and [cluster])");
    }
    let data_dir = data_dir(&args, config.serve.data_dir.as_deref())?;
    // A file size limit (ulimit -f) makes a write to the log fail with an error that serve
    // answers (503 until it can write again), instead of a signal that kills it.
    // SAFETY: setting a signal's disposition to "ignore" touches no Rust state.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("tidemark-io")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let running = start(
            config,
            ServeOptions {
                workers: args.workers,
                demo,
                data_dir,
                cluster,
            },
        )
        .await?;
        let url = format!("http://{}/", running.addr);
        tidemark::say!(
            "tidemark: listening on {} (dashboard {url}); Ctrl-C stops",
            running.addr
        );
        if args.open {
            open_browser(&url);
        }
        let stop = running.stopper();
        tokio::spawn(async move {
            shutdown_signal().await;
            tidemark::say!("tidemark: shutting down");
            let _ = stop.send(true);
        });
        running.wait().await.context("the HTTP server failed")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Opens `url` with the desktop's opener on a thread of its own, which waits for the opener
/// (so no defunct child is left behind) and says plainly, with the URL, when it cannot.
fn open_browser(url: &str) {
    let url = url.to_string();
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let spawned = std::thread::Builder::new()
        .name("open-browser".into())
        .spawn(move || {
            let why = match std::process::Command::new(opener)
                .arg(&url)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
            {
                Ok(status) if status.success() => return,
                Ok(status) => format!("{opener} failed ({status}); is there a desktop?"),
                Err(e) => format!("{opener} cannot run ({e})"),
            };
            tidemark::say!("tidemark: cannot open a browser: {why}; open {url} yourself");
        });
    if spawned.is_err() {
        tidemark::say!("tidemark: cannot open a browser; open the dashboard yourself");
    }
}
