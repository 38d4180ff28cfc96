//! The snapshot document of OUTPUT.md: format, zone, clock, event counts and sorted rows.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};

use crate::facts::Ident;
use crate::ingest::{Counts, Dictionary};
use crate::metric::{Key, Labeler, Value};
use crate::plan::Plan;

/// Everything besides the rows that a snapshot states.
pub struct SnapshotMeta<'a> {
    pub plan: &'a Plan,
    pub dict: &'a Dictionary,
    pub counts: &'a Counts,
    pub clock: Option<i64>,
    /// Identities that stopped linking, with their number of links.
    pub guarded: &'a [(Ident, u32)],
    /// Alert transitions (listed when alerts are configured).
    pub transitions: Vec<&'a crate::dataflow::Transition>,
}

/// Rows as JSON, sorted by metric name and then by dims as sorted-key JSON text.
pub fn sorted_rows<'a>(
    labeler: &Labeler,
    rows: impl Iterator<Item = (&'a Key, &'a Value)>,
) -> Vec<Json> {
    let mut out: Vec<(&'static str, String, Json)> = rows
        .map(|(k, v)| {
            let row = labeler.row(k, *v);
            let sorted: BTreeMap<_, _> = row["dims"].as_object().into_iter().flatten().collect();
            let sort_key = serde_json::to_string(&sorted).unwrap_or_default();
            (k.0.name(), sort_key, row)
        })
        .collect();
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out.into_iter().map(|(_, _, row)| row).collect()
}

/// The whole snapshot document.
pub fn snapshot_json<'a>(
    meta: &SnapshotMeta,
    rows: impl Iterator<Item = (&'a Key, &'a Value)>,
) -> Json {
    let (extensions, spec): (Vec<_>, Vec<_>) = rows.partition(|(k, _)| k.0.is_extension());
    let labeler = Labeler {
        plan: meta.plan,
        dict: meta.dict,
    };
    let cal = &meta.plan.config.calendar;
    let rejected: Map<String, Json> = meta
        .counts
        .rejected
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let guarded: Vec<Json> = meta
        .guarded
        .iter()
        .map(|(id, links)| {
            let (kind, value) = meta.dict.ident(*id).unwrap_or_default();
            json!({"type": kind, "value": value, "links": links})
        })
        .collect();
    let mut doc = json!({
        "format": "tidemark.snapshot.v1",
        "timezone": cal.name(),
        "clock": meta.clock.map(|c| cal.format_instant(c)),
        "events": {
            "accepted": meta.counts.accepted,
            "duplicates": meta.counts.duplicates,
            "rejected": rejected,
        },
        "identity": {"guarded": guarded},
        "rows": sorted_rows(&labeler, spec.into_iter()),
    });
    if !meta.plan.config.alerts.is_empty() {
        doc["alerts"] = super::actions::alerts_json(meta.plan, meta.transitions.iter().copied());
    }
    doc["extensions"] = Json::Array(sorted_rows(&labeler, extensions.into_iter()));
    doc
}
