//! Property tests of the parser on arbitrary input: no bytes make it panic, and whatever it
//! accepts has an id, a name and at least one identity.

use proptest::prelude::*;

use super::{parse_event, Limits};
use crate::config::Config;

/// Inputs near valid events: JSON objects with the known fields and arbitrary values, then
/// arbitrary bytes spliced in.
fn near_events() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("null".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f}")),
        "[a-z0-9_:.+-]{0,12}".prop_map(|s| format!("{s:?}")),
        Just("{\"amount\":\"12.30\",\"order_id\":\"o1\"}".to_string()),
        Just("[1,2]".to_string()),
    ];
    let field = prop_oneof![
        Just("id"),
        Just("ts"),
        Just("event"),
        Just("user"),
        Just("openid"),
        Just("phone"),
        Just("ids"),
        Just("props"),
        Just("channel"),
    ];
    prop::collection::vec((field, value), 0..8).prop_map(|fields| {
        let body: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| format!("{k:?}:{v}"))
            .collect();
        format!("{{{}}}", body.join(","))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let limits = Limits::from_config(&Config::default());
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = parse_event(text, &limits);
        }
    }

    #[test]
    fn near_events_never_panic_and_what_passes_is_whole(text in near_events(), cut in 0usize..200) {
        let limits = Limits::from_config(&Config::default());
        let mut cut_at = cut.min(text.len());
        while !text.is_char_boundary(cut_at) {
            cut_at -= 1;
        }
        for t in [text.as_str(), &text[..cut_at]] {
            if let Ok(ev) = parse_event(t, &limits) {
                prop_assert!(!ev.id.is_empty());
                prop_assert!(!ev.name.is_empty());
                prop_assert!(!ev.ids.is_empty());
            }
        }
    }
}
