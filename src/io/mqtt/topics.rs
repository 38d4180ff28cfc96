//! Topic names of published metrics: one topic level per metric and dims value, escaped so a
//! value can never add a level or a wildcard.

use serde_json::Value as Json;

/// One topic level holding `text`: `%`, `/`, `+`, `#` and NUL are percent-encoded, everything
/// else is kept, so levels read as the values they stand for.
pub fn topic_level(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            '+' => out.push_str("%2B"),
            '#' => out.push_str("%23"),
            '\0' => out.push_str("%00"),
            c => out.push(c),
        }
    }
    out
}

/// A dims value as text: strings as they are, numbers as JSON writes them.
fn dim_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `{prefix}/rows/{metric}/{dims values in order}` of a row, e.g. `tidemark/rows/dau/2026-10-01`.
pub fn row_topic(prefix: &str, metric: &str, dims: &serde_json::Map<String, Json>) -> String {
    let mut topic = format!("{prefix}/rows/{}", topic_level(metric));
    for v in dims.values() {
        topic.push('/');
        topic.push_str(&topic_level(&dim_text(v)));
    }
    topic
}

/// `{prefix}/deltas/{metric}`.
pub fn delta_topic(prefix: &str, metric: &str) -> String {
    format!("{prefix}/deltas/{}", topic_level(metric))
}

/// `{prefix}/progress`.
pub fn progress_topic(prefix: &str) -> String {
    format!("{prefix}/progress")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_one_level_per_dim_in_order_and_values_cannot_add_levels() {
        let dims: serde_json::Map<String, Json> =
            serde_json::from_str(r#"{"cohort_day":"2026-10-01","n":7,"channel":"a/b+#%"}"#)
                .unwrap();
        let topic = row_topic("tm", "retention", &dims);
        assert_eq!(topic, "tm/rows/retention/2026-10-01/7/a%2Fb%2B%23%25");
        assert_eq!(topic.split('/').count(), 6);
        assert_eq!(
            row_topic("tm", "total", &Default::default()),
            "tm/rows/total"
        );
        assert_eq!(delta_topic("tm", "dau"), "tm/deltas/dau");
    }
}
