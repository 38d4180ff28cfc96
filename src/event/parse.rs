//! Validation of one JSON event: every rule of EVENTS.md, each failure with its reason.

use std::borrow::Cow;

use super::amount::parse_number;
use super::wire::{top_level_kind, Amount, Object, Props, Scalar, Wire};
use super::{parse_amount, Event, Reason, Rejection, MAX_EVENT_BYTES};

/// Earliest accepted event time: 2000-01-01T00:00:00Z.
pub const MIN_TS: i64 = 946_684_800_000;
/// First rejected event time: 2101-01-01T00:00:00Z.
pub const END_TS: i64 = 4_133_980_800_000;

/// The configured parts of validation.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Identity values that mean "unknown" (compared case-insensitively).
    pub blocked_values: Vec<String>,
    /// The spend event, the only one valid without an identity.
    pub spend_event: String,
    /// Props keys whose values rules compare (as text); other props are not kept.
    pub prop_keys: Vec<String>,
    /// Live use: events stamped more than this many milliseconds after the wall clock are
    /// rejected as `future_timestamp`. `None` (compute): a log's clock is its own.
    pub max_future_ms: Option<i64>,
}

impl Limits {
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Limits {
            blocked_values: cfg.blocked_values.clone(),
            spend_event: cfg.spend_event.clone(),
            prop_keys: {
                let mut keys: Vec<String> = cfg
                    .rules
                    .iter()
                    .flat_map(|r| {
                        r.where_
                            .iter()
                            .map(|(k, _)| k.clone())
                            .chain(r.match_key.clone())
                    })
                    .collect();
                keys.sort();
                keys.dedup();
                keys
            },
            max_future_ms: None,
        }
    }

    fn blocked(&self, v: &str) -> bool {
        self.blocked_values
            .iter()
            .any(|b| b.eq_ignore_ascii_case(v))
    }
}

fn reject<T>(reason: Reason, detail: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection::new(reason, detail))
}

fn string_field<'a>(
    name: &str,
    v: Option<Scalar<'a>>,
    max: usize,
) -> Result<Cow<'a, str>, Rejection> {
    match v {
        None | Some(Scalar::Other("null")) => {
            reject(Reason::MissingField, format!("`{name}` is required"))
        }
        Some(Scalar::Str(s)) if !s.is_empty() && s.len() <= max => Ok(s),
        Some(Scalar::Str(s)) => reject(
            Reason::BadType,
            format!("`{name}` must be 1..={max} bytes, got {}", s.len()),
        ),
        Some(other) => reject(
            Reason::BadType,
            format!("`{name}` must be a string, got {}", other.kind()),
        ),
    }
}

/// Largest offset from UTC a timestamp may carry, in seconds: 24:00.
const MAX_OFFSET_SECONDS: i32 = 24 * 3600;

/// The offset an RFC 3339 text carries, when it is out of range.
fn offset_beyond_a_day(text: &str) -> Option<i32> {
    use jiff::fmt::temporal::{Pieces, PiecesOffset};
    match Pieces::parse(text).ok()?.offset()? {
        PiecesOffset::Numeric(n) => {
            let secs = n.offset().seconds();
            (secs.abs() > MAX_OFFSET_SECONDS).then_some(secs)
        }
        _ => None,
    }
}

fn timestamp(v: Option<Scalar>) -> Result<i64, Rejection> {
    let ms = match v {
        None | Some(Scalar::Other("null")) => {
            return reject(Reason::MissingField, "`ts` is required")
        }
        Some(Scalar::Int(ms)) => ms,
        Some(Scalar::Str(s)) => match s.parse::<jiff::Timestamp>() {
            Ok(_) if offset_beyond_a_day(&s).is_some() => {
                return reject(
                    Reason::BadTimestamp,
                    format!("`ts` {s:?} has an offset beyond ±24:00"),
                )
            }
            Ok(t) => t.as_millisecond(),
            Err(_) => {
                return reject(
                    Reason::BadTimestamp,
                    format!(
                    "`ts` {s:?} is not RFC 3339 with an offset (e.g. 2026-10-01T08:05:00+08:00)"
                ),
                )
            }
        },
        Some(Scalar::Float(f)) => {
            return reject(
                Reason::BadTimestamp,
                format!("`ts` {f} must be whole epoch milliseconds"),
            )
        }
        Some(other) => {
            return reject(
                Reason::BadType,
                format!(
                    "`ts` must be epoch milliseconds or an RFC 3339 string, got {}",
                    other.kind()
                ),
            )
        }
    };
    if !(MIN_TS..END_TS).contains(&ms) {
        return reject(
            Reason::BadTimestamp,
            format!("`ts` {ms} is outside the years 2000..=2100"),
        );
    }
    Ok(ms)
}

/// The props text values of the keys rules compare, and `props.amount` in cents.
type PropTexts<'a> = (Vec<(Cow<'a, str>, Cow<'a, str>)>, Option<i64>);

/// A props value as rules compare it: a string is its text, a number its JSON text.
fn prop_text(raw: &serde_json::value::RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<Cow<str>>(text).ok(),
        Some(b'-' | b'0'..=b'9') => Some(Cow::Borrowed(text)),
        _ => None,
    }
}

fn props<'a>(props: Option<Props<'a>>, keys: &[String]) -> Result<PropTexts<'a>, Rejection> {
    let (amount_value, others) = match props {
        None | Some(Props::Not("null")) => return Ok((Vec::new(), None)),
        Some(Props::Not(kind)) => {
            return reject(
                Reason::BadType,
                format!("`props` must be an object, got {kind}"),
            )
        }
        Some(Props::Object { amount, others }) => (amount, others),
    };
    let mut texts = Vec::new();
    if keys.iter().any(|k| k == "amount") {
        match &amount_value {
            Some(Amount::Number(t)) => texts.push((Cow::Borrowed("amount"), Cow::Borrowed(*t))),
            Some(Amount::Str(s)) => texts.push((Cow::Borrowed("amount"), Cow::Owned(s.clone()))),
            _ => {}
        }
    }
    for (k, raw) in others {
        if keys.iter().any(|x| *x == k) {
            if let Some(t) = prop_text(raw) {
                texts.push((k, t));
            }
        }
    }
    Ok((texts, amount(amount_value)?))
}

fn amount(value: Option<Amount>) -> Result<Option<i64>, Rejection> {
    let Some(value) = value else {
        return Ok(None);
    };
    let cents = match value {
        Amount::Number(text) => parse_number(text),
        Amount::Str(s) => parse_amount(&s),
        Amount::Other("null") => return Ok(None),
        Amount::Other(kind) => {
            return reject(
                Reason::BadAmount,
                format!("`props.amount`: amount must be a number or decimal string, got {kind}"),
            )
        }
    };
    cents
        .map(Some)
        .map_err(|e| Rejection::new(Reason::BadAmount, format!("`props.amount`: {e}")))
}

/// Rejects an event stamped too far ahead of the wall clock (live use only).
fn not_in_future(ts: i64, limits: &Limits) -> Result<(), Rejection> {
    let Some(max_future) = limits.max_future_ms else {
        return Ok(());
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    if ts > now.saturating_add(max_future) {
        return reject(
            Reason::FutureTimestamp,
            format!(
                "`ts` {ts} is {} s ahead of the server's clock, more than serve.max_future allows ({} s); check the sender's clock",
                (ts - now) / 1000,
                max_future / 1000
            ),
        );
    }
    Ok(())
}

/// Validates one event given as JSON text.
pub fn parse_event<'a>(text: &'a str, limits: &Limits) -> Result<Event<'a>, Rejection> {
    if text.len() > MAX_EVENT_BYTES {
        return reject(
            Reason::TooLarge,
            format!(
                "event is {} bytes; the limit is {MAX_EVENT_BYTES}",
                text.len()
            ),
        );
    }
    let trimmed = text.trim();
    if !trimmed.starts_with('{') {
        return match top_level_kind(trimmed) {
            Some(kind) => reject(
                Reason::BadType,
                format!("an event must be a JSON object, got {kind}"),
            ),
            None => reject(Reason::MalformedJson, "not valid JSON"),
        };
    }
    let wire: Wire = serde_json::from_str(trimmed)
        .map_err(|e| Rejection::new(Reason::MalformedJson, e.to_string()))?;
    let id = string_field("id", wire.id, 128)?;
    let ts = timestamp(wire.ts)?;
    let name = string_field("event", wire.event, 64)?;

    let mut ids: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::new();
    let mut add = |kind: Cow<'a, str>, v: Scalar<'a>| -> Result<(), Rejection> {
        match v {
            Scalar::Str(value) => {
                if !limits.blocked(&value) && !ids.iter().any(|(k, x)| *k == kind && *x == value) {
                    ids.push((kind, value));
                }
                Ok(())
            }
            Scalar::Other("null") => Ok(()),
            other => reject(
                Reason::BadType,
                format!("identity `{kind}` must be a string, got {}", other.kind()),
            ),
        }
    };
    match wire.ids {
        None | Some(Object::Not("null")) => {}
        Some(Object::Not(kind)) => {
            return reject(
                Reason::BadType,
                format!("`ids` must be an object, got {kind}"),
            )
        }
        Some(Object::Entries(entries)) => {
            for (k, v) in entries {
                if k.is_empty() {
                    return reject(Reason::BadType, "identity types in `ids` must not be empty");
                }
                add(k, v)?;
            }
        }
    }
    if let Some(v) = wire.user {
        add(Cow::Borrowed("user"), v)?;
    }
    let channel = match wire.channel {
        None | Some(Scalar::Other("null")) => None,
        Some(Scalar::Str(s)) if s.is_empty() => None,
        Some(Scalar::Str(s)) if s.len() <= 128 => Some(s),
        Some(Scalar::Str(s)) => {
            return reject(
                Reason::BadType,
                format!("`channel` must be at most 128 bytes, got {}", s.len()),
            )
        }
        Some(other) => {
            return reject(
                Reason::BadType,
                format!("`channel` must be a string, got {}", other.kind()),
            )
        }
    };
    let (props, amount) = props(wire.props, &limits.prop_keys)?;
    not_in_future(ts, limits)?;
    if ids.is_empty() {
        if name != limits.spend_event {
            return reject(
                Reason::NoIdentity,
                "the event has no identity (after removing values that mean unknown)",
            );
        }
        if channel.is_none() || amount.is_none() {
            return reject(
                Reason::NoIdentity,
                format!(
                    "a `{}` event without identity needs `channel` and `props.amount`",
                    limits.spend_event
                ),
            );
        }
    }
    Ok(Event {
        id,
        ts,
        name,
        ids,
        channel,
        amount,
        props,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::from_config(&crate::config::Config::default())
    }

    fn reason(line: &str) -> Reason {
        parse_event(line, &limits()).unwrap_err().reason
    }

    #[test]
    fn accepts_the_spec_examples() {
        let l = limits();
        let e = parse_event(r#"{"id":"e-2","ts":"2026-10-01T08:05:00.000+08:00","event":"register","ids":{"openid":"o_42","uid":"u_42","phone":"13800000000"}}"#, &l).unwrap();
        assert_eq!(e.ts, 1_790_813_100_000);
        assert_eq!(e.ids.len(), 3);
        let e = parse_event(r#"{"id":"e-3","ts":1790790000000,"event":"order_paid","user":"u_42","props":{"order_id":"o-9","amount":99.9}}"#, &l).unwrap();
        assert_eq!(e.amount, Some(9990));
        assert_eq!(e.ids, vec![(Cow::Borrowed("user"), Cow::Borrowed("u_42"))]);
        let e = parse_event(r#"{"id":"e-4","ts":1790790000000,"event":"ad_spend","channel":"douyin_ads","props":{"amount":1200}}"#, &l).unwrap();
        assert_eq!(e.amount, Some(120_000));
        assert!(e.ids.is_empty());
    }

    #[test]
    fn classifies_rejections() {
        assert_eq!(
            reason(r#"{"id":"a","ts":1793700000000"#),
            Reason::MalformedJson
        );
        assert_eq!(reason(r#"["not","an","object"]"#), Reason::BadType);
        assert_eq!(
            reason(r#"{"ts":1793700000000,"event":"x","user":"g"}"#),
            Reason::MissingField
        );
        assert_eq!(
            reason(r#"{"id":"a","ts":"yesterday","event":"x","user":"g"}"#),
            Reason::BadTimestamp
        );
        assert_eq!(
            reason(r#"{"id":"a","ts":946684799999,"event":"x","user":"g"}"#),
            Reason::BadTimestamp
        );
        assert_eq!(
            reason(r#"{"id":"a","ts":1793700000000,"event":"x","ids":{}}"#),
            Reason::NoIdentity
        );
        assert_eq!(
            reason(r#"{"id":"a","ts":1793700000000,"event":"x","user":"AnOnYmOuS"}"#),
            Reason::NoIdentity
        );
        assert_eq!(
            reason(r#"{"id":"a","ts":1793700000000,"event":"ad_spend","props":{"amount":5}}"#),
            Reason::NoIdentity
        );
        assert_eq!(
            reason(
                r#"{"id":"a","ts":1793700000000,"event":"x","user":"g","props":{"amount":"1.005"}}"#
            ),
            Reason::BadAmount
        );
        assert_eq!(
            reason(r#"{"id":"a","ts":1793700000000,"event":"x","user":42}"#),
            Reason::BadType
        );
        assert_eq!(
            reason(&format!(
                r#"{{"id":"a","ts":1793700000000,"event":"{}","user":"g"}}"#,
                "x".repeat(65)
            )),
            Reason::BadType
        );
        assert_eq!(
            reason(&format!(
                r#"{{"id":"a","ts":1,"event":"x","pad":"{}"}}"#,
                "p".repeat(MAX_EVENT_BYTES)
            )),
            Reason::TooLarge
        );
    }

    #[test]
    fn offsets_beyond_a_day_are_bad_timestamps() {
        let at = |ts: &str| {
            parse_event(
                &format!(r#"{{"id":"a","ts":"{ts}","event":"x","user":"g"}}"#),
                &limits(),
            )
            .map(|e| e.ts)
        };
        assert!(at("2026-10-01T08:05:00+24:00").is_ok());
        assert!(at("2026-10-01T08:05:00-23:59").is_ok());
        assert!(at("2026-10-01T08:05:00Z").is_ok());
        for bad in ["2026-10-01T08:05:00+25:00", "2026-10-01T08:05:00-24:01"] {
            let r = at(bad).expect_err(bad);
            assert_eq!(r.reason, Reason::BadTimestamp, "{bad}: {r}");
        }
    }

    #[test]
    fn amounts_are_exact_non_negative_and_strict() {
        let amount = |a: &str| {
            parse_event(
                &format!(r#"{{"id":"a","ts":1793700000000,"event":"x","user":"g","props":{{"amount":{a}}}}}"#),
                &limits(),
            )
            .map(|e| e.amount)
        };
        assert_eq!(amount("99.9"), Ok(Some(9990)));
        assert_eq!(amount(r#""99.90""#), Ok(Some(9990)));
        assert_eq!(amount("null"), Ok(None));
        assert_eq!(
            amount("70000000000000"),
            Ok(Some(super::super::amount::MAX_CENTS))
        );
        for bad in [
            r#"" 5 ""#,
            r#""+5""#,
            "-5",
            r#""-0.01""#,
            "12345678901234.561",
            "70000000000000.01",
            "92233720368547758.07",
            "true",
        ] {
            assert_eq!(amount(bad).unwrap_err().reason, Reason::BadAmount, "{bad}");
        }
    }

    #[test]
    fn only_live_use_rejects_the_future() {
        let line = r#"{"id":"a","ts":"2100-12-31T00:00:00Z","event":"x","user":"g"}"#;
        assert!(
            parse_event(line, &limits()).is_ok(),
            "compute: the log's clock is its own"
        );
        let live = Limits {
            max_future_ms: Some(600_000),
            ..limits()
        };
        assert_eq!(
            parse_event(line, &live).unwrap_err().reason,
            Reason::FutureTimestamp
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let now = i64::try_from(now).unwrap();
        let soon = format!(
            r#"{{"id":"a","ts":{},"event":"x","user":"g"}}"#,
            now + 60_000
        );
        assert!(
            parse_event(&soon, &live).is_ok(),
            "a minute ahead is within 10 min"
        );
        let late = format!(
            r#"{{"id":"a","ts":{},"event":"x","user":"g"}}"#,
            now + 660_000
        );
        assert_eq!(
            parse_event(&late, &live).unwrap_err().reason,
            Reason::FutureTimestamp
        );
    }

    #[test]
    fn invalid_id_type_is_bad_type_not_missing() {
        assert_eq!(
            reason(r#"{"id":7,"ts":1793700000000,"event":"x","user":"g"}"#),
            Reason::BadType
        );
    }
}
