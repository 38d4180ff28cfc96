//! Processes of the MQTT integration tests: a private Mosquitto and `tidemark serve` children
//! (killed on drop), their stderr logs, and polling with a deadline.

pub mod listen;

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The mosquitto binary; a test that needs it fails without one (such tests are ignored unless
/// asked for, so one that runs must really run).
pub fn mosquitto() -> PathBuf {
    let mut candidates = vec![PathBuf::from("/usr/sbin/mosquitto")];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("mosquitto")));
    }
    let found = candidates.into_iter().find(|p| p.is_file());
    found.expect(
        "mosquitto not found; apt-get install -y mosquitto (these tests need a real broker)",
    )
}

/// A child process, killed and reaped when dropped (on every path, panics included).
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The stderr lines of a child, kept to wait on and to show when a test fails.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    /// Copies `stream`'s lines into the log on a named thread; lines containing `mark` also go
    /// to `marks`.
    fn follow(
        &self,
        name: &str,
        stream: impl Read + Send + 'static,
        mark: &'static str,
        marks: Option<mpsc::Sender<String>>,
    ) {
        let lines = self.0.clone();
        std::thread::Builder::new()
            .name(format!("log-{name}"))
            .spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Some(tx) = &marks {
                        if line.contains(mark) {
                            let _ = tx.send(line.clone());
                        }
                    }
                    lines.lock().unwrap().push(line);
                }
            })
            .expect("log thread starts");
    }

    /// Whether some line ends with `end`.
    pub fn has_line_ending(&self, end: &str) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.trim_end().ends_with(end))
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.0.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    pub fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

/// Polls `probe` every 50 ms until it answers; panics after `timeout` saying what was awaited.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().unwrap().port()
}

/// A Mosquitto of its own on a free loopback port, without persistence, logging everything.
pub struct Broker {
    pub port: u16,
    pub log: Log,
    dir: PathBuf,
    bin: PathBuf,
    _child: Guard,
}

impl Broker {
    pub fn start(bin: &Path, name: &str) -> Broker {
        Broker::start_with(bin, name, false)
    }

    /// A broker that saves its sessions and queued messages when stopped, so that `restart`
    /// keeps them.
    pub fn start_persistent(bin: &Path, name: &str) -> Broker {
        Broker::start_with(bin, name, true)
    }

    fn start_with(bin: &Path, name: &str, persistent: bool) -> Broker {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("tidemark-mqtt-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("mosquitto.conf");
        let persistence = if persistent {
            // Mosquitto started as root writes its database as the `mosquitto` user.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
            format!(
                "persistence true\npersistence_location {}/\n",
                dir.display()
            )
        } else {
            "persistence false\n".to_string()
        };
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\n{persistence}log_dest stderr\nlog_type all\nmax_queued_messages 0\n"
            ),
        )
        .unwrap();
        let log = Log::default();
        let child = Broker::spawn(bin, &dir, port, &log);
        Broker {
            port,
            log,
            dir,
            bin: bin.to_path_buf(),
            _child: child,
        }
    }

    /// Stops the broker with SIGTERM (it saves what it persists) and starts it again on the
    /// same port and directory.
    pub fn restart(&mut self) {
        let pid = self._child.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self._child.0.wait();
        self._child = Broker::spawn(&self.bin, &self.dir, self.port, &self.log);
    }

    fn spawn(bin: &Path, dir: &Path, port: u16, log: &Log) -> Guard {
        let conf = dir.join("mosquitto.conf");
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto starts");
        log.follow("mosquitto", child.stderr.take().unwrap(), "", None);
        let child = Guard(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {port}:\n{}",
                log.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits until the broker has logged a line ending with `end`.
    pub async fn logged(&self, end: &str) {
        let what = format!("mosquitto to log {end:?}");
        eventually(&what, Duration::from_secs(20), || async {
            self.log.has_line_ending(end).then_some(())
        })
        .await
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `tidemark serve` child on a free loopback port, reading from and publishing to a broker.
pub struct Tidemark {
    pub addr: SocketAddr,
    pub log: Log,
    child: Guard,
}

const LISTENING: &str = "tidemark: listening on ";

impl Tidemark {
    pub fn start(config: &Path, broker: &Broker) -> Tidemark {
        Tidemark::start_with(config, broker, &[])
    }

    /// As [`Tidemark::start`], with more arguments (a data directory, a process of a cluster).
    pub fn start_with(config: &Path, broker: &Broker, args: &[String]) -> Tidemark {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
            .args(["serve", "--listen", "127.0.0.1:0", "--mqtt", &broker.url()])
            .arg("--config")
            .arg(config)
            .args(args)
            .env("TIDEMARK_LOG", "info")
            .env_remove("TIDEMARK_INGEST_TOKEN")
            .env_remove("TIDEMARK_READ_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tidemark serve starts");
        let log = Log::default();
        let (tx, rx) = mpsc::channel();
        log.follow(
            "tidemark",
            child.stderr.take().unwrap(),
            LISTENING,
            Some(tx),
        );
        let child = Guard(child);
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("tidemark serve did not start:\n{}", log.text()));
        let rest = &line[line.find(LISTENING).unwrap() + LISTENING.len()..];
        let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
        Tidemark { addr, log, child }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM and waits (at most 20 s) for the process to exit.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.0.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "tidemark did not stop after SIGTERM:\n{}",
                self.log.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
