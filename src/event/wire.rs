//! The permissive JSON shape of an event: every field read without judging its type yet.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Any JSON value, kept only as far as validation needs it.
#[derive(Debug)]
pub enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Other(&'static str),
}

impl Scalar<'_> {
    /// JSON type name, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "string",
            Scalar::Int(_) | Scalar::Float(_) => "number",
            Scalar::Other(k) => k,
        }
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v)
            .map(Scalar::Int)
            .unwrap_or(Scalar::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Other("boolean"))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Other("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other("array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other("object"))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// A field that should be a JSON object: its entries, or the kind of value found instead.
#[derive(Debug)]
pub enum Object<'a> {
    Entries(Vec<(Cow<'a, str>, Scalar<'a>)>),
    Not(&'static str),
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Object<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<Cow<'de, str>>()? {
            entries.push((k, map.next_value::<Scalar<'de>>()?));
        }
        Ok(Object::Entries(entries))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Object::Not("array"))
    }
    fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Self::Value, E> {
        Ok(Object::Not("string"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Object::Not("string"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Object::Not("number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Object::Not("number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Object::Not("number"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Object::Not("boolean"))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Object::Not("null"))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Object<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjectVisitor)
    }
}

/// `props.amount` as written: the text of a JSON number (exact, never through a float), a
/// string, or the kind of value found instead.
#[derive(Debug)]
pub enum Amount<'a> {
    Number(&'a str),
    Str(String),
    Other(&'static str),
}

/// The `props` field: its `amount` (the first one, if several) and every other property as
/// written, or the kind of value found instead of an object.
#[derive(Debug)]
pub enum Props<'a> {
    Object {
        amount: Option<Amount<'a>>,
        others: Vec<(Cow<'a, str>, &'a RawValue)>,
    },
    Not(&'static str),
}

fn amount_of(raw: &RawValue) -> Amount<'_> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => match serde_json::from_str::<String>(text) {
            Ok(s) => Amount::Str(s),
            Err(_) => Amount::Other("string"),
        },
        Some(b'-' | b'0'..=b'9') => Amount::Number(text),
        Some(b'n') => Amount::Other("null"),
        Some(b't' | b'f') => Amount::Other("boolean"),
        Some(b'[') => Amount::Other("array"),
        _ => Amount::Other("object"),
    }
}

struct PropsVisitor;

impl<'de> Visitor<'de> for PropsVisitor {
    type Value = Props<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut amount = None;
        let mut others = Vec::new();
        while let Some(k) = map.next_key::<Cow<'de, str>>()? {
            let raw: &'de RawValue = map.next_value()?;
            if k == "amount" {
                if amount.is_none() {
                    amount = Some(amount_of(raw));
                }
            } else {
                others.push((k, raw));
            }
        }
        Ok(Props::Object { amount, others })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Props::Not("array"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Props::Not("string"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Props::Not("number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Props::Not("number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Props::Not("number"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Props::Not("boolean"))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Props::Not("null"))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Props<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PropsVisitor)
    }
}

/// The top-level event object; unknown fields are skipped.
#[derive(Debug, Deserialize)]
pub struct Wire<'a> {
    #[serde(borrow, default)]
    pub id: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    pub ts: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    pub event: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    pub ids: Option<Object<'a>>,
    #[serde(borrow, default)]
    pub user: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    pub channel: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    pub props: Option<Props<'a>>,
}

/// Reads the JSON type of a document's top-level value, for inputs that are not objects.
pub fn top_level_kind(text: &str) -> Option<&'static str> {
    serde_json::from_str::<Scalar>(text).ok().map(|s| s.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_plain_strings_and_keeps_escapes() {
        let w: Wire =
            serde_json::from_str(r#"{"id":"a","event":"p\u0041","x":[1,{"y":2}]}"#).unwrap();
        assert!(matches!(w.id, Some(Scalar::Str(Cow::Borrowed("a")))));
        match w.event {
            Some(Scalar::Str(s)) => assert_eq!(s, "pA"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_amount_keeps_its_text() {
        let amount = |props: &str| {
            let text = format!(r#"{{"props":{props}}}"#);
            let w: Wire = serde_json::from_str(&text).unwrap();
            match w.props.unwrap() {
                Props::Object { amount, .. } => format!("Object({amount:?})"),
                other => format!("{other:?}"),
            }
        };
        assert_eq!(
            amount(r#"{"x":[1],"amount":12345678901234567.89}"#),
            r#"Object(Some(Number("12345678901234567.89")))"#
        );
        assert_eq!(
            amount(r#"{"amount":"1\u0030"}"#),
            r#"Object(Some(Str("10")))"#
        );
        assert_eq!(
            amount(r#"{"amount":null,"amount":5}"#),
            r#"Object(Some(Other("null")))"#
        );
        assert_eq!(amount(r#"{"a":1}"#), "Object(None)");
        assert_eq!(amount("[1]"), r#"Not("array")"#);
    }
}
