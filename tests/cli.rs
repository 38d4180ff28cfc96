//! The command line's rough edges: bad arguments refused with a clear message, a closed output
//! pipe ends a run quietly, `--listen localhost:PORT` works, and `--open` without a desktop
//! says so, prints the URL and leaves no defunct child behind.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::server::{binary, fresh_data_dir};

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(binary()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn zero_workers_and_a_missing_config_are_refused_clearly() {
    let (code, err) = run(&["compute", "-w", "0", "--input", "-"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("allowed: 1..=1024"), "{err}");
    let (code, err) = run(&["serve", "-w", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("workers"), "{err}");

    let (code, err) = run(&["check", "--config", "/nonexistent/tidemark.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/tidemark.toml"), "{err}");
    assert_eq!(
        err.matches("No such file").count(),
        1,
        "the cause once: {err}"
    );
}

#[test]
fn a_closed_output_pipe_ends_compute_and_generate_quietly() {
    for args in [
        &["generate", "--persons", "3000", "--days", "30"][..],
        &["compute", "--quiet", "--input", "LOG"][..],
    ] {
        let log = fresh_data_dir().join("log.ndjson");
        let gen = Command::new(binary())
            .args(["generate", "--persons", "300", "--days", "10", "--output"])
            .arg(&log)
            .status()
            .unwrap();
        assert!(gen.success());
        let args: Vec<&str> = args
            .iter()
            .map(|a| {
                if *a == "LOG" {
                    log.to_str().unwrap()
                } else {
                    a
                }
            })
            .collect();
        let mut child = Command::new(binary())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read one line, then go away like `head -n 1`.
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{args:?}: {status} {err}");
        assert!(!err.to_lowercase().contains("pipe"), "{args:?}: {err}");
    }
}

/// Starts `serve` with `args` and PATH set to `path`; returns the child and its stderr lines
/// up to and including the listening line, plus the lines that follow within `more`.
fn serve_lines(args: &[&str], path: &str, more: Duration) -> (std::process::Child, Vec<String>) {
    let mut child = Command::new(binary())
        .arg("serve")
        .args(args)
        .arg("--data")
        .arg(fresh_data_dir())
        .env("PATH", path)
        .env_remove("TIDEMARK_INGEST_TOKEN")
        .env_remove("TIDEMARK_READ_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let done = line.starts_with("tidemark: listening on ");
        lines.push(line);
        if done {
            break;
        }
    }
    let until = Instant::now() + more;
    while let Ok(line) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
        lines.push(line);
    }
    (child, lines)
}

#[test]
fn listen_takes_localhost_and_open_without_a_desktop_says_so_and_reaps_its_child() {
    // An opener that fails the way xdg-open does without a desktop.
    let bin = fresh_data_dir();
    let opener = bin.join("xdg-open");
    std::fs::write(
        &opener,
        "#!/bin/sh\necho 'no method available' >&2\nexit 3\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(&opener).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&opener, perms).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let (mut child, lines) = serve_lines(
        &["--listen", "localhost:0", "--open"],
        &path,
        Duration::from_secs(2),
    );
    let text = lines.join("\n");
    let listening = lines
        .iter()
        .find(|l| l.starts_with("tidemark: listening on 127.0.0.1:"))
        .unwrap_or_else(|| panic!("localhost:0 means 127.0.0.1: {text}"));
    let addr = listening.split_whitespace().nth(3).unwrap();
    let said = lines
        .iter()
        .find(|l| l.contains("cannot open a browser"))
        .unwrap_or_else(|| panic!("--open says it failed: {text}"));
    assert!(said.contains(&format!("http://{addr}/")), "{said}");
    assert_eq!(
        text.matches("loopback").count(),
        1,
        "the loopback note once: {text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes into a pipe: {text}"
    );
    // No defunct child: every child of the server has been waited for.
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
        .unwrap_or_default();
    let tasks = std::fs::read_dir(format!("/proc/{}/task", child.id())).unwrap();
    let mut all = children;
    for t in tasks.flatten() {
        all += &std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
    }
    for pid in all.split_whitespace() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(!stat.contains(") Z "), "a defunct child: {stat}");
    }
    let _ = child.kill();
    let _ = child.wait();
}
