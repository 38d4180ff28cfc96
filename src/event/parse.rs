//! Validation of one JSON event: every rule of EVENTS.md, each failure with its reason.

use std::borrow::Cow;

use super::wire::{top_level_kind, Object, Scalar, Wire};
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

fn timestamp(v: Option<Scalar>) -> Result<i64, Rejection> {
    let ms = match v {
        None | Some(Scalar::Other("null")) => {
            return reject(Reason::MissingField, "`ts` is required")
        }
        Some(Scalar::Int(ms)) => ms,
        Some(Scalar::Str(s)) => match s.parse::<jiff::Timestamp>() {
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
type Props<'a> = (Vec<(Cow<'a, str>, Cow<'a, str>)>, Option<i64>);

fn props<'a>(props: Option<Object<'a>>, keys: &[String]) -> Result<Props<'a>, Rejection> {
    let entries = match props {
        None => return Ok((Vec::new(), None)),
        Some(Object::Not("null")) => return Ok((Vec::new(), None)),
        Some(Object::Not(kind)) => {
            return reject(
                Reason::BadType,
                format!("`props` must be an object, got {kind}"),
            )
        }
        Some(Object::Entries(e)) => e,
    };
    let mut texts = Vec::new();
    let mut amount_value = None;
    for (k, v) in entries {
        if k == "amount" {
            let text = match &v {
                Scalar::Str(s) => Some(s.clone()),
                Scalar::Int(i) => Some(Cow::Owned(i.to_string())),
                Scalar::Float(f) => Some(Cow::Owned(f.to_string())),
                Scalar::Other(_) => None,
            };
            if let Some(t) = text.filter(|_| keys.iter().any(|x| x == "amount")) {
                texts.push((k.clone(), t));
            }
            amount_value = Some(v);
            continue;
        }
        if keys.iter().any(|x| *x == k) {
            match v {
                Scalar::Str(s) => texts.push((k, s)),
                Scalar::Int(i) => texts.push((k, Cow::Owned(i.to_string()))),
                Scalar::Float(f) => texts.push((k, Cow::Owned(f.to_string()))),
                Scalar::Other(_) => {}
            }
        }
    }
    Ok((texts, amount(amount_value)?))
}

fn amount(value: Option<Scalar>) -> Result<Option<i64>, Rejection> {
    let Some(value) = value else {
        return Ok(None);
    };
    let cents = match value {
        Scalar::Int(v) => v
            .checked_mul(100)
            .ok_or_else(|| format!("amount {v} is too large")),
        Scalar::Float(f) => parse_amount(&f.to_string()),
        Scalar::Str(s) => parse_amount(&s),
        Scalar::Other("null") => return Ok(None),
        Scalar::Other(kind) => Err(format!(
            "amount must be a number or decimal string, got {kind}"
        )),
    };
    cents
        .map(Some)
        .map_err(|e| Rejection::new(Reason::BadAmount, format!("`props.amount`: {e}")))
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
    fn invalid_id_type_is_bad_type_not_missing() {
        assert_eq!(
            reason(r#"{"id":7,"ts":1793700000000,"event":"x","user":"g"}"#),
            Reason::BadType
        );
    }
}
