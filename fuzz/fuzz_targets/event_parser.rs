//! Fuzz target: any UTF-8 text given to the event parser with the default limits never panics.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tidemark::config::Config;
use tidemark::event::{parse_event, Limits};

static LIMITS: LazyLock<Limits> = LazyLock::new(|| Limits::from_config(&Config::default()));

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_event(text, &LIMITS);
    }
});
