//! One generated event in compact form, and how it is written as one NDJSON line.

use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;

use super::json::{push_amount, push_i64, push_key, push_padded, push_u64};
use super::model::{phone, CHANNELS, PAGES, SHARE_TARGETS};

/// The event names the generator emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    PageView,
    ProductView,
    AddToCart,
    OrderCreated,
    OrderPaid,
    Register,
    Login,
    Share,
    AdSpend,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::PageView => "page_view",
            Kind::ProductView => "product_view",
            Kind::AddToCart => "add_to_cart",
            Kind::OrderCreated => "order_created",
            Kind::OrderPaid => "order_paid",
            Kind::Register => "register",
            Kind::Login => "login",
            Kind::Share => "share",
            Kind::AdSpend => "ad_spend",
        }
    }
}

/// Identity bits of [`Ev::ids`]: which of the person's identities the event carries.
pub const OPENID: u8 = 1;
/// The openid of the person's second device.
pub const OPENID2: u8 = 2;
pub const UNIONID: u8 = 4;
/// The account id as `ids.uid`.
pub const UID: u8 = 8;
/// The account id as the top-level `user` shorthand.
pub const USER: u8 = 16;
pub const PHONE: u8 = 32;

/// Style bits of [`Ev::style`]: `ts` as an RFC 3339 string, `props.amount` as a decimal string.
pub const TS_TEXT: u8 = 1;
pub const AMOUNT_TEXT: u8 = 2;

/// A generated event before it is written.
#[derive(Clone, Copy, Debug)]
pub struct Ev {
    /// Epoch milliseconds.
    pub ts: i64,
    pub person: u64,
    /// Page index, product number, order number or share-target index, by kind.
    pub arg: u64,
    pub cents: i64,
    pub kind: Kind,
    pub ids: u8,
    /// Index into [`CHANNELS`] of the channel named on the event.
    pub channel: Option<u8>,
    pub style: u8,
}

/// How one identity kind is written: (bit in `Ev::ids`, key, value prefix, number, suffix).
type IdentityShape<'a> = (u8, &'a str, &'a [u8], u64, &'a [u8]);

/// Writes events as JSON lines for one seed and zone.
pub struct Renderer {
    seed: u64,
    tz: TimeZone,
    links: bool,
}

impl Renderer {
    pub fn new(seed: u64, tz: TimeZone) -> Self {
        Renderer {
            seed,
            tz,
            links: true,
        }
    }

    /// With `links` false every event carries only the person's openid, so no event links two
    /// identities: the same log as seen by a tool without identity resolution.
    pub fn with_links(mut self, links: bool) -> Self {
        self.links = links;
        self
    }

    /// Appends the event's line (with its newline) to `buf`.
    pub fn line(&self, ev: &Ev, id: u64, buf: &mut Vec<u8>) {
        buf.extend_from_slice(b"{\"id\":\"e-");
        push_u64(buf, id);
        buf.extend_from_slice(b"\",\"ts\":");
        if ev.style & TS_TEXT != 0 {
            self.push_rfc3339(buf, ev.ts);
        } else {
            push_i64(buf, ev.ts);
        }
        buf.extend_from_slice(b",\"event\":\"");
        buf.extend_from_slice(ev.kind.name().as_bytes());
        buf.push(b'"');
        self.push_ids(buf, ev);
        if let Some(name) = ev.channel.and_then(|c| CHANNELS[usize::from(c)].name) {
            buf.extend_from_slice(b",\"channel\":\"");
            buf.extend_from_slice(name.as_bytes());
            buf.push(b'"');
        }
        buf.extend_from_slice(b",\"props\":{");
        let text = |buf: &mut Vec<u8>, key: &str, value: &str| {
            push_key(buf, key);
            buf.push(b'"');
            buf.extend_from_slice(value.as_bytes());
            buf.push(b'"');
        };
        match ev.kind {
            Kind::PageView => text(buf, "page", PAGES[usize::try_from(ev.arg).expect("a page")]),
            Kind::ProductView | Kind::AddToCart => {
                push_key(buf, "sku");
                buf.extend_from_slice(b"\"sku-");
                push_u64(buf, ev.arg);
                buf.push(b'"');
            }
            Kind::OrderCreated | Kind::OrderPaid => {
                push_key(buf, "order_id");
                buf.extend_from_slice(b"\"ord-");
                push_u64(buf, ev.arg);
                buf.extend_from_slice(b"\",");
                push_amount(buf, ev.cents, ev.style & AMOUNT_TEXT != 0);
            }
            Kind::AdSpend => push_amount(buf, ev.cents, ev.style & AMOUNT_TEXT != 0),
            Kind::Register if ev.ids & PHONE != 0 => text(buf, "method", "phone"),
            Kind::Register => text(buf, "method", "wechat"),
            Kind::Login if ev.ids & UNIONID != 0 => text(buf, "method", "wechat_auth"),
            Kind::Login => text(buf, "method", "sms"),
            Kind::Share => {
                let target = usize::try_from(ev.arg).expect("a share target");
                text(buf, "target", SHARE_TARGETS[target])
            }
        }
        buf.extend_from_slice(b"}}\n");
    }

    fn push_ids(&self, buf: &mut Vec<u8>, ev: &Ev) {
        let n = ev.person + 1;
        if ev.ids == 0 {
            // The spend event: it belongs to a channel, not to a person.
            return;
        }
        if !self.links {
            buf.extend_from_slice(b",\"ids\":{\"openid\":\"o_");
            push_u64(buf, n);
            buf.extend_from_slice(b"\"}");
            return;
        }
        let phone_number = if ev.ids & PHONE != 0 {
            phone(self.seed, ev.person)
        } else {
            0
        };
        let kinds: [IdentityShape; 5] = [
            (OPENID, "openid", b"o_", n, b""),
            (OPENID2, "openid", b"o_", n, b"_2"),
            (UNIONID, "unionid", b"un_", n, b""),
            (UID, "uid", b"u_", n, b""),
            (PHONE, "phone", b"", phone_number, b""),
        ];
        let mut first = true;
        for (bit, key, prefix, number, suffix) in kinds {
            if ev.ids & bit == 0 {
                continue;
            }
            buf.extend_from_slice(if first { b",\"ids\":{" } else { b"," });
            first = false;
            push_key(buf, key);
            buf.push(b'"');
            buf.extend_from_slice(prefix);
            push_u64(buf, number);
            buf.extend_from_slice(suffix);
            buf.push(b'"');
        }
        if !first {
            buf.push(b'}');
        }
        if ev.ids & USER != 0 {
            buf.extend_from_slice(b",\"user\":\"u_");
            push_u64(buf, n);
            buf.push(b'"');
        }
    }

    /// `"YYYY-MM-DDTHH:MM:SS.mmm+HH:MM"` in the zone's offset at that instant.
    fn push_rfc3339(&self, buf: &mut Vec<u8>, ms: i64) {
        let t =
            Timestamp::from_millisecond(ms).expect("generated instants lie within jiff's range");
        let zone_offset = self.tz.to_offset(t);
        // RFC 3339 offsets have whole minutes; historic second-precise offsets fall back to UTC.
        let offset = if zone_offset.seconds() % 60 == 0 {
            zone_offset
        } else {
            Offset::UTC
        };
        let dt = offset.to_datetime(t);
        buf.push(b'"');
        push_padded(buf, dt.year().unsigned_abs().into(), 4);
        for (sep, v) in [
            (b'-', dt.month()),
            (b'-', dt.day()),
            (b'T', dt.hour()),
            (b':', dt.minute()),
            (b':', dt.second()),
        ] {
            buf.push(sep);
            push_padded(buf, v.unsigned_abs().into(), 2);
        }
        buf.push(b'.');
        push_padded(buf, dt.millisecond().unsigned_abs().into(), 3);
        let secs = offset.seconds();
        buf.push(if secs < 0 { b'-' } else { b'+' });
        let minutes = u64::from(secs.unsigned_abs() / 60);
        push_padded(buf, minutes / 60, 2);
        buf.push(b':');
        push_padded(buf, minutes % 60, 2);
        buf.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: Kind, ids: u8, style: u8) -> Ev {
        Ev {
            ts: 1_790_813_100_000,
            person: 41,
            arg: 9,
            cents: 9_990,
            kind,
            ids,
            channel: None,
            style,
        }
    }

    fn text(r: &Renderer, e: &Ev) -> String {
        let mut buf = Vec::new();
        r.line(e, 2, &mut buf);
        String::from_utf8(buf).unwrap()
    }

    /// Every kind, with and without identity links, is an event EVENTS.md accepts: spend
    /// carries a channel and an amount and no identity; every other kind has an identity.
    #[test]
    fn every_kind_is_a_valid_event_of_its_shape() {
        use crate::event::{parse_event, Limits};
        let limits = Limits::from_config(&Default::default());
        let kinds = [
            Kind::PageView,
            Kind::ProductView,
            Kind::AddToCart,
            Kind::OrderCreated,
            Kind::OrderPaid,
            Kind::Register,
            Kind::Login,
            Kind::Share,
            Kind::AdSpend,
        ];
        for links in [true, false] {
            let r = Renderer::new(0, TimeZone::UTC).with_links(links);
            for kind in kinds {
                for style in [0, TS_TEXT | AMOUNT_TEXT] {
                    let spend = kind == Kind::AdSpend;
                    let mut e = ev(kind, if spend { 0 } else { OPENID | UID | USER }, style);
                    (e.channel, e.arg) = (Some(1), 1);
                    let line = text(&r, &e);
                    let parsed = parse_event(line.trim_end(), &limits)
                        .unwrap_or_else(|x| panic!("{line}: {x:?}"));
                    assert_eq!(parsed.name, kind.name(), "{line}");
                    assert_eq!(parsed.ts, e.ts, "{line}");
                    assert_eq!(parsed.ids.is_empty(), spend, "{line}");
                    if spend {
                        assert!(
                            parsed.channel.is_some() && parsed.amount == Some(e.cents),
                            "{line}"
                        );
                    }
                    if matches!(kind, Kind::OrderCreated | Kind::OrderPaid) {
                        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                        assert!(v["props"]["order_id"].is_string(), "{line}");
                        assert_eq!(parsed.amount, Some(e.cents), "{line}");
                    }
                }
            }
        }
    }

    #[test]
    fn renders_the_documented_shapes() {
        let r = Renderer::new(0, TimeZone::get("Asia/Shanghai").unwrap());
        let mut reg = ev(Kind::Register, OPENID | UID | PHONE, TS_TEXT);
        reg.channel = Some(1);
        let want = format!(
            "{{\"id\":\"e-2\",\"ts\":\"2026-10-01T08:05:00.000+08:00\",\"event\":\"register\",\"ids\":{{\"openid\":\"o_42\",\"uid\":\"u_42\",\"phone\":\"{}\"}},\"channel\":\"douyin_ads\",\"props\":{{\"method\":\"phone\"}}}}\n",
            phone(0, 41)
        );
        assert_eq!(text(&r, &reg), want);
        let paid = ev(Kind::OrderPaid, USER, 0);
        assert_eq!(
            text(&r, &paid),
            "{\"id\":\"e-2\",\"ts\":1790813100000,\"event\":\"order_paid\",\"user\":\"u_42\",\"props\":{\"order_id\":\"ord-9\",\"amount\":99.9}}\n"
        );
    }

    #[test]
    fn rfc3339_denotes_the_same_instant_across_dst() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let r = Renderer::new(0, tz.clone());
        // Around the 2026-03-08 spring-forward and 2026-11-01 fall-back transitions.
        for base in [1_772_953_200_000i64, 1_793_512_800_000] {
            for step in 0..48 {
                let ms = base + step * 450_017;
                let mut buf = Vec::new();
                r.push_rfc3339(&mut buf, ms);
                let s = String::from_utf8(buf).unwrap();
                let parsed: Timestamp = s.trim_matches('"').parse().unwrap();
                assert_eq!(parsed.as_millisecond(), ms, "{s}");
                let off = tz.to_offset(parsed).seconds();
                let sign = if off < 0 { '-' } else { '+' };
                let suffix = format!("{sign}{:02}:{:02}\"", off.abs() / 3600, off.abs() / 60 % 60);
                assert!(s.ends_with(&suffix), "{s} vs {suffix}");
            }
        }
    }
}
