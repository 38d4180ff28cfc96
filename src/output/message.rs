//! The messages of a subscription as OUTPUT.md writes them: typed upsert envelopes, progress
//! marks, resyncs and closings, each serialised by one `Serialize` at the edge that sends it.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::dataflow::Time;
use crate::metric::Metric;

/// One upsert envelope of OUTPUT.md: a row's new value and the one it replaces, at a time.
///
/// Serialises as `{"metric":…,"dims":{…},"value":…,"prev":…,"time":…}`, fields in that order.
/// Its JSON text ([`Upsert::text`]) is written once and shared by every subscriber sending it.
#[derive(Clone, Serialize, Deserialize)]
pub struct Upsert {
    /// The row's metric; written as its name in rows (`"dau"`).
    #[serde(with = "metric_name")]
    pub metric: Metric,
    /// The row's dims, keys in the order of METRICS.md.
    pub dims: Map<String, Json>,
    /// The row's value as OUTPUT.md writes it; `None` (null): the row disappeared.
    pub value: Option<Json>,
    /// The value it replaces; `None` (null): the row is new.
    pub prev: Option<Json>,
    /// The logical time of the change.
    pub time: Time,
    /// The JSON text, once asked for.
    #[serde(skip)]
    text: OnceLock<Arc<str>>,
}

impl Upsert {
    /// An upsert of `metric`'s row at `dims`; a JSON null `value` or `prev` counts as none.
    pub fn new(
        metric: Metric,
        dims: Map<String, Json>,
        value: Option<Json>,
        prev: Option<Json>,
        time: Time,
    ) -> Self {
        Upsert {
            metric,
            dims,
            value: value.filter(|v| !v.is_null()),
            prev: prev.filter(|v| !v.is_null()),
            time,
            text: OnceLock::new(),
        }
    }

    /// The envelope's JSON text, serialised at the first call and shared by every later one.
    pub fn text(&self) -> &Arc<str> {
        self.text.get_or_init(|| {
            serde_json::to_string(self)
                .expect("an upsert serialises")
                .into()
        })
    }

    /// The row this upsert leaves, `{"metric":…,"dims":{…},"value":…}` (OUTPUT.md's row), as
    /// JSON text; `None` when the row disappeared.
    pub fn row_text(&self) -> Option<String> {
        #[derive(Serialize)]
        struct Row<'a> {
            metric: &'static str,
            dims: &'a Map<String, Json>,
            value: &'a Json,
        }
        let value = self.value.as_ref()?;
        let row = Row {
            metric: self.metric.name(),
            dims: &self.dims,
            value,
        };
        Some(serde_json::to_string(&row).expect("a row serialises"))
    }
}

impl PartialEq for Upsert {
    fn eq(&self, other: &Self) -> bool {
        (self.metric, &self.dims, &self.value, &self.prev, self.time)
            == (
                other.metric,
                &other.dims,
                &other.value,
                &other.prev,
                other.time,
            )
    }
}

impl fmt::Debug for Upsert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upsert")
            .field("metric", &self.metric.name())
            .field("dims", &self.dims)
            .field("value", &self.value)
            .field("prev", &self.prev)
            .field("time", &self.time)
            .finish()
    }
}

/// One message of a subscription as it goes over the wire (SSE, WebSocket, MQTT): what a
/// client reads a message into, and what writes every message but the upsert envelope
/// ([`Upsert::text`] writes those).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WireMessage {
    /// `{"progress":T}`: every change up to time T has been sent.
    Progress {
        /// The time T.
        progress: Time,
    },
    /// `{"resync":true}`: the subscriber fell behind; drop every row, the current ones follow.
    Resync {
        /// Always true.
        resync: bool,
    },
    /// `{"closed":"why"}`: the subscription ends.
    Closed {
        /// Why.
        closed: String,
    },
    /// An upsert envelope.
    Upsert(Box<Upsert>),
}

impl WireMessage {
    /// The message's JSON text.
    pub fn text(&self) -> String {
        match self {
            WireMessage::Upsert(u) => u.text().to_string(),
            other => serde_json::to_string(other).expect("a wire message serialises"),
        }
    }
}

/// A metric as its name in rows.
mod metric_name {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::metric::Metric;

    pub fn serialize<S: Serializer>(metric: &Metric, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(metric.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Metric, D::Error> {
        let name = String::deserialize(d)?;
        Metric::from_name(&name).ok_or_else(|| D::Error::custom(format!("unknown metric {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::metric::Value;

    fn dims(j: Json) -> Map<String, Json> {
        match j {
            Json::Object(m) => m,
            _ => unreachable!(),
        }
    }

    /// The envelope as the hub wrote it before it kept upserts typed.
    fn envelope(metric: &str, dims: Json, value: Json, prev: Json, time: Time) -> String {
        json!({"metric": metric, "dims": dims, "value": value, "prev": prev, "time": time})
            .to_string()
    }

    #[test]
    fn upserts_are_written_as_the_envelope_of_output_md() {
        let cases = [
            (
                Metric::Dau,
                json!({"day": "2026-10-01"}),
                Some(Value::Count(1235)),
                Some(Value::Count(1234)),
            ),
            (
                Metric::Revenue,
                json!({"day": "2026-10-01"}),
                Some(Value::Money(1999)),
                None,
            ),
            (
                Metric::Revenue,
                json!({"day": "2026-10-01"}),
                Some(Value::Money(200)),
                Some(Value::Money(-5)),
            ),
            (
                Metric::RetentionRate,
                json!({"cohort_day": "2026-10-01", "n": 7}),
                Some(Value::Rate(1, 3)),
                None,
            ),
            (
                Metric::Stickiness,
                json!({"day": "2026-10-01"}),
                None,
                Some(Value::Rate(2, 4)),
            ),
            (
                Metric::Funnel,
                json!({"funnel": "a \"b\"\n", "day": "2026-10-01", "step": 2}),
                None,
                None,
            ),
        ];
        for (metric, d, value, prev) in cases {
            let (value, prev) = (value.map(Value::to_json), prev.map(Value::to_json));
            let u = Upsert::new(
                metric,
                dims(d.clone()),
                value.clone(),
                prev.clone(),
                1790800000123,
            );
            let old = envelope(
                metric.name(),
                d,
                value.unwrap_or(Json::Null),
                prev.unwrap_or(Json::Null),
                1790800000123,
            );
            assert_eq!(&**u.text(), old);
            assert_eq!(WireMessage::Upsert(Box::new(u.clone())).text(), old);
            let back: WireMessage = serde_json::from_str(&old).unwrap();
            assert_eq!(back, WireMessage::Upsert(Box::new(u)));
        }
    }

    #[test]
    fn the_text_is_written_once_and_shared() {
        let u = Upsert::new(Metric::Dau, Map::new(), Some(json!(1)), None, 1);
        assert!(Arc::ptr_eq(u.text(), u.text()));
    }

    #[test]
    fn rows_are_metric_dims_and_value_and_none_once_gone() {
        let d = dims(json!({"day": "2026-10-01"}));
        let u = Upsert::new(Metric::Dau, d.clone(), Some(json!(3)), Some(json!(2)), 5);
        assert_eq!(
            u.row_text().unwrap(),
            json!({"metric": "dau", "dims": d.clone(), "value": 3}).to_string()
        );
        let gone = Upsert::new(Metric::Dau, d, None, Some(json!(3)), 6);
        assert_eq!(gone.row_text(), None);
    }

    #[test]
    fn progress_resync_and_closed_read_back_as_written() {
        let cases = [
            (
                WireMessage::Progress {
                    progress: 1790800000123,
                },
                r#"{"progress":1790800000123}"#,
            ),
            (WireMessage::Resync { resync: true }, r#"{"resync":true}"#),
            (
                WireMessage::Closed {
                    closed: "too \"slow\"".into(),
                },
                r#"{"closed":"too \"slow\""}"#,
            ),
        ];
        for (message, text) in cases {
            assert_eq!(message.text(), text);
            assert_eq!(serde_json::from_str::<WireMessage>(text).unwrap(), message);
        }
        let t = 42u64;
        assert_eq!(
            WireMessage::Progress { progress: t }.text(),
            format!("{{\"progress\":{t}}}")
        );
    }

    #[test]
    fn an_unknown_metric_is_not_an_upsert() {
        let text = r#"{"metric":"nope","dims":{},"value":1,"prev":null,"time":1}"#;
        assert!(serde_json::from_str::<WireMessage>(text).is_err());
    }
}
