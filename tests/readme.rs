//! The README's examples, run as written against `tidemark serve --demo` (the server its first
//! command starts): every fenced block marked for testing runs, and what it prints must equal
//! the output block shown after it, so the README cannot drift from the code.
//!
//! Markers, after the block's language: `sh test` runs the block with bash (in one working
//! directory, `tidemark` on the PATH, `127.0.0.1:7878` meaning the test's server); a following
//! `json output` block is compared with what it printed, as a sequence of JSON values (`any=KEY`:
//! a field whose value varies, such as a wall-clock time, only needs to be there with the same
//! type); `json ingest` blocks are posted to the server as NDJSON and must all be accepted;
//! `toml file=NAME` blocks are written to NAME, and `toml check` blocks must pass `tidemark check`.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::server::{binary, fresh_data_dir, Server};
use serde_json::Value;

/// A fenced block: the line it starts on, its language, its other markers and its text.
struct Block {
    line: usize,
    lang: String,
    tags: Vec<String>,
    text: String,
}

impl Block {
    fn has(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// The values of `NAME=` markers.
    fn values(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}=");
        self.tags
            .iter()
            .filter_map(|t| t.strip_prefix(&prefix).map(String::from))
            .collect()
    }
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        if let Some(block) = open.as_mut() {
            if line.trim_end() == "```" {
                out.extend(open.take());
            } else {
                block.text.push_str(line);
                block.text.push('\n');
            }
        } else if let Some(info) = line.strip_prefix("```") {
            let mut words = info.split_whitespace().map(String::from);
            open = Some(Block {
                line: i + 1,
                lang: words.next().unwrap_or_default(),
                tags: words.collect(),
                text: String::new(),
            });
        }
    }
    assert!(open.is_none(), "the README ends inside a fenced block");
    out
}

/// The JSON values of a text, one after another (a document, or JSON Lines).
fn json_values(text: &str, what: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{what} is not a sequence of JSON values ({e}):\n{text}"))
}

/// Whether `actual` is what `expected` shows; fields named in `any` only need the same type.
fn same(expected: &Value, actual: &Value, any: &[String]) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len()
                && e.iter().all(|(k, v)| {
                    a.get(k).is_some_and(|w| {
                        if any.contains(k) {
                            std::mem::discriminant(v) == std::mem::discriminant(w)
                        } else {
                            same(v, w, any)
                        }
                    })
                })
        }
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(v, w)| same(v, w, any))
        }
        _ => expected == actual,
    }
}

fn bash(script: &str, dir: &Path, path: &str) -> Output {
    Command::new("bash")
        .args(["-e", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .output()
        .expect("bash runs")
}

#[test]
fn readme_examples_give_the_output_shown() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let blocks = blocks(&readme);
    let server = Server::start(&["--demo"], &[]);
    let dir = fresh_data_dir();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(binary(), bin.join("tidemark")).expect("a tidemark on the PATH");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (mut ran, mut compared, mut posted) = (0, 0, 0);
    for (i, block) in blocks.iter().enumerate() {
        let at = format!("README.md:{}", block.line);
        for name in block.values("file") {
            std::fs::write(dir.join(&name), &block.text).unwrap();
        }
        if block.has("check") {
            let file = dir.join("checked.toml");
            std::fs::write(&file, &block.text).unwrap();
            let out = Command::new(binary())
                .args(["check", "--config"])
                .arg(&file)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "{at}: tidemark check refuses it: {err}"
            );
        }
        if block.has("ingest") {
            let file = dir.join("ingest.ndjson");
            std::fs::write(&file, &block.text).unwrap();
            let script = format!(
                "curl -sf -X POST {} -H 'Content-Type: application/x-ndjson' --data-binary @{}",
                server.url("/v1/events"),
                file.display()
            );
            let out = bash(&script, &dir, &path);
            let answer = json_values(&String::from_utf8_lossy(&out.stdout), &at);
            let lines = block.text.lines().filter(|l| !l.trim().is_empty()).count();
            assert_eq!(answer.len(), 1, "{at}: one ingest answer");
            assert_eq!(answer[0]["accepted"], lines, "{at}: {}", answer[0]);
            posted += 1;
        }
        if !(block.lang == "sh" && block.has("test")) {
            continue;
        }
        let script = block.text.replace("127.0.0.1:7878", &server.addr);
        let out = bash(&script, &dir, &path);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{at} failed ({}):\n{script}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
        let Some(shown) = blocks.get(i + 1).filter(|b| b.has("output")) else {
            continue;
        };
        let any = shown.values("any");
        let expected = json_values(&shown.text, &format!("README.md:{}", shown.line));
        let actual = json_values(&stdout, &format!("the output of {at}"));
        assert!(
            expected.len() == actual.len()
                && expected.iter().zip(&actual).all(|(e, a)| same(e, a, &any)),
            "{at} printed\n{stdout}\nbut README.md:{} shows\n{}",
            shown.line,
            shown.text
        );
        compared += 1;
    }
    // The markers themselves are part of what is tested: losing them must not pass quietly.
    assert!(
        ran >= 6 && compared >= 5 && posted >= 1,
        "too few README examples are marked for testing: {ran} run, {compared} compared, {posted} posted"
    );
}

#[test]
fn blocks_and_comparison_follow_the_markers() {
    let md = "text\n```sh test\necho '{\"a\": [1, 2], \"time\": 5}'\n```\n```json output any=time\n{\"a\": [1, 2],\n \"time\": 9}\n```\n";
    let b = blocks(md);
    assert_eq!(b.len(), 2);
    assert_eq!(
        (b[0].line, b[0].lang.as_str(), b[0].has("test")),
        (2, "sh", true)
    );
    assert_eq!(b[1].values("any"), vec!["time".to_string()]);
    let shown = &json_values(&b[1].text, "shown")[0];
    let any = b[1].values("any");
    assert!(same(
        shown,
        &serde_json::json!({"a": [1, 2], "time": 1}),
        &any
    ));
    assert!(!same(
        shown,
        &serde_json::json!({"a": [1, 2], "time": "1"}),
        &any
    ));
    assert!(!same(
        shown,
        &serde_json::json!({"a": [2, 1], "time": 1}),
        &any
    ));
    assert!(!same(shown, &serde_json::json!({"a": [1, 2]}), &any));
    assert!(!same(
        shown,
        &serde_json::json!({"a": [1, 2], "time": 1, "b": 0}),
        &[]
    ));
}
