//! One person's active day: sessions of browsing, carting, ordering, paying, sharing and identity events.

use super::model::{
    price_cents, Profile, Register, Sessions, HOUR_WEIGHTS, LANDING, PAGE_WEIGHTS, PAID_CHANNELS,
    SHARE_TARGETS, SKUS,
};
use super::record::{Ev, Kind, OPENID, OPENID2, PHONE, UID, UNIONID, USER};
use super::rng::{unit, Rng};

/// Person state bits: registered, registration postponed to the next visit, second device in use.
pub const REGISTERED: u8 = 1;
pub const PENDING: u8 = 2;
pub const DEVICE2: u8 = 4;

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const BROWSE_GAP: (i64, i64) = (3 * SECOND, 90 * SECOND);
const MAX_CART: usize = 8;

/// The local day being simulated: `[start_ms, start_ms + len_ms)`.
pub struct Day {
    pub seed: u64,
    pub index: u32,
    pub start_ms: i64,
    pub len_ms: i64,
}

/// A person active on the day.
pub struct Visitor<'a> {
    pub index: u64,
    pub profile: Profile,
    /// The day is the person's arrival day.
    pub arriving: bool,
    /// How long the person's day is.
    pub sessions: &'a Sessions,
}

/// Appends the person's events of the day to `out`; `orders` numbers the orders.
pub fn person_day(day: &Day, who: &Visitor, state: &mut u8, orders: &mut u64, out: &mut Vec<Ev>) {
    let mut rng = Rng::new(day.seed, &[0x5E55, who.index, u64::from(day.index)]);
    let shape = who.sessions;
    let sessions = 1 + usize::from(rng.chance(shape.second)) + usize::from(rng.chance(shape.third));
    let mut starts = [0i64; 3];
    for s in &mut starts[..sessions] {
        *s = rng.weighted(&HOUR_WEIGHTS) as i64 * HOUR + rng.range(0, HOUR);
    }
    starts[..sessions].sort_unstable();
    let mut earliest = 0;
    for (i, &start) in starts[..sessions].iter().enumerate() {
        let begin = out.len();
        let mut s = Session {
            rng: &mut rng,
            who,
            out,
            orders,
            t: 0,
            started: false,
            device: OPENID,
            state: *state,
            channel: None,
        };
        if i == 0 {
            s.opening();
        } else {
            s.resume();
        }
        s.browse();
        *state = s.state;
        // Relative times grow monotonically, so the last event ends the session.
        let duration = out.last().map_or(0, |e| e.ts);
        let at = start.max(earliest).min(day.len_ms - 1 - duration);
        if at < earliest {
            out.truncate(begin);
            break;
        }
        for e in &mut out[begin..] {
            e.ts += day.start_ms + at;
        }
        earliest = at + duration + 10 * MINUTE;
    }
}

/// Events of one session, with times relative to its start.
struct Session<'a> {
    rng: &'a mut Rng,
    who: &'a Visitor<'a>,
    out: &'a mut Vec<Ev>,
    orders: &'a mut u64,
    t: i64,
    started: bool,
    /// `OPENID` or `OPENID2`: the device this session runs on.
    device: u8,
    state: u8,
    /// Channel to name on the next event.
    channel: Option<u8>,
}

impl Session<'_> {
    fn push(&mut self, kind: Kind, ids: u8, arg: u64, cents: i64, gap: (i64, i64)) {
        if self.started {
            self.t += self.rng.range(gap.0, gap.1);
        }
        self.started = true;
        let channel = self.channel.take();
        self.out.push(Ev {
            ts: self.t,
            person: self.who.index,
            arg,
            cents,
            kind,
            ids,
            channel,
            style: 0,
        });
    }

    fn account(&self) -> u8 {
        if self.who.profile.account_as_user {
            USER
        } else {
            UID
        }
    }

    /// The identities an ordinary event carries.
    fn ids(&mut self) -> u8 {
        if self.who.profile.unionid && !self.who.arriving && self.rng.chance(0.2) {
            return UNIONID;
        }
        if self.state & REGISTERED == 0 {
            return self.device;
        }
        match self.rng.below(20) {
            0..=9 => self.device,
            10..=16 => self.account(),
            _ => self.device | self.account(),
        }
    }

    fn page_view(&mut self, page: u64) {
        let ids = self.ids();
        self.push(Kind::PageView, ids, page, 0, BROWSE_GAP);
    }

    fn other_page(&mut self) -> u64 {
        self.rng.weighted(&PAGE_WEIGHTS) as u64
    }

    /// The day's first session: arrival channel and identity events happen here.
    fn opening(&mut self) {
        let p = self.who.profile;
        let register_now = if self.who.arriving {
            self.channel = Some(u8::try_from(p.channel).expect("one of the 7 CHANNELS"));
            if p.register == Register::NextVisit {
                self.state |= PENDING;
            }
            p.register == Register::FirstSession
        } else {
            self.pick_device();
            self.state & PENDING != 0
        };
        let second_login = self.state & (REGISTERED | DEVICE2) == REGISTERED
            && p.second_device
            && self.rng.chance(0.5);
        if second_login {
            self.device = OPENID2;
        }
        let first_page = if self.who.arriving {
            LANDING
        } else {
            self.other_page()
        };
        self.page_view(first_page);
        if self.who.arriving && p.unionid {
            self.push(Kind::Login, OPENID | UNIONID, 0, 0, BROWSE_GAP);
        }
        if second_login {
            let ids = OPENID2 | self.account();
            self.push(Kind::Login, ids, 0, 0, BROWSE_GAP);
            self.state |= DEVICE2;
        }
        if register_now {
            for _ in 0..self.rng.below(3) {
                let page = self.other_page();
                self.page_view(page);
            }
            let phone = if p.phone_on_register { PHONE } else { 0 };
            let ids = OPENID | self.account() | phone;
            self.push(Kind::Register, ids, 0, 0, (20 * SECOND, 3 * MINUTE));
            self.state = (self.state | REGISTERED) & !PENDING;
        }
    }

    /// A later session of the day.
    fn resume(&mut self) {
        self.pick_device();
        let page = self.other_page();
        self.page_view(page);
    }

    /// On a returning visit: which device, and sometimes a click on an ad again.
    fn pick_device(&mut self) {
        if self.state & DEVICE2 != 0 && self.rng.chance(0.4) {
            self.device = OPENID2;
        }
        if self.rng.chance(0.03) {
            let paid = self.rng.below(PAID_CHANNELS as u64);
            self.channel = Some(u8::try_from(paid).expect("one of the 5 paid CHANNELS"));
        }
    }

    /// Page and product views, carting, sharing, and perhaps an order and its payment.
    fn browse(&mut self) {
        let buying = self.who.profile.buying;
        let shape = self.who.sessions;
        let mut pages = shape.pages.0 + self.rng.below(shape.pages.1);
        let mut products = shape.products.0 + self.rng.below(shape.products.1);
        let mut cart = [0u64; MAX_CART];
        let mut carted = 0;
        let mut last_sku = 1;
        while pages + products > 0 {
            if self.rng.below(pages + products) < pages {
                pages -= 1;
                let page = self.other_page();
                self.page_view(page);
                continue;
            }
            products -= 1;
            let u = unit(self.rng.next_u64());
            // A whole number below SKUS: u is in [0, 1).
            #[allow(clippy::cast_possible_truncation)]
            let sku = (u * u * SKUS as f64) as u64;
            last_sku = 1 + sku;
            let ids = self.ids();
            self.push(
                Kind::ProductView,
                ids,
                last_sku,
                0,
                (5 * SECOND, 2 * MINUTE),
            );
            if carted < MAX_CART && self.rng.chance(0.1 * buying) {
                let ids = self.ids();
                self.push(Kind::AddToCart, ids, last_sku, 0, BROWSE_GAP);
                cart[carted] = last_sku;
                carted += 1;
            }
        }
        if self.rng.chance(0.12) {
            let ids = self.ids();
            let target = self.rng.below(SHARE_TARGETS.len() as u64);
            self.push(Kind::Share, ids, target, 0, BROWSE_GAP);
        }
        let items: &[u64] = if carted > 0 && self.rng.chance(0.5) {
            &cart[..carted]
        } else if carted == 0 && self.rng.chance(0.03 * buying) {
            std::slice::from_ref(&last_sku)
        } else {
            return;
        };
        let mut cents: i64 = items
            .iter()
            .map(|&sku| price_cents(sku) * if self.rng.chance(0.1) { 2 } else { 1 })
            .sum();
        if self.rng.chance(0.2) {
            cents = (cents - self.rng.range(500, 3_000)).max(100);
        }
        *self.orders += 1;
        let order = *self.orders;
        let ids = self.ids();
        self.push(
            Kind::OrderCreated,
            ids,
            order,
            cents,
            (30 * SECOND, 5 * MINUTE),
        );
        if self.rng.chance(0.7) {
            let ids = if self.state & REGISTERED != 0 && self.rng.chance(0.7) {
                self.account()
            } else {
                self.device
            };
            self.push(
                Kind::OrderPaid,
                ids,
                order,
                cents,
                (20 * SECOND, 15 * MINUTE),
            );
        }
    }
}
