//! The simulated world: channels, pages, products, busy hours, and each person's fixed traits.

use super::rng::{hash, unit};

/// An acquisition channel; `name: None` is organic traffic.
pub struct Channel {
    pub name: Option<&'static str>,
    /// Share of arriving persons, in per mille (the shares add up to 1000).
    pub share: u32,
    /// Target cost per acquired person in cents; 0 for channels without ad spend.
    pub cac_cents: i64,
    /// Multiplier on the chance of coming back.
    pub retention: f64,
    /// Multiplier on the chance of carting and buying.
    pub buying: f64,
}

const fn channel(
    name: Option<&'static str>,
    share: u32,
    cac_cents: i64,
    retention: f64,
    buying: f64,
) -> Channel {
    Channel {
        name,
        share,
        cac_cents,
        retention,
        buying,
    }
}

/// The first `PAID_CHANNELS` channels buy ads; the others have no spend.
pub const PAID_CHANNELS: usize = 5;
pub const CHANNELS: [Channel; 7] = [
    channel(Some("wechat_moments"), 220, 1_800, 1.0, 1.0),
    channel(Some("douyin_ads"), 240, 1_200, 0.7, 0.8),
    channel(Some("search_ads"), 120, 3_000, 1.1, 1.4),
    channel(Some("kol_live"), 100, 2_500, 0.9, 1.6),
    channel(Some("offline_qr"), 70, 800, 1.3, 0.9),
    channel(Some("referral"), 80, 0, 1.3, 1.1),
    channel(None, 170, 0, 1.2, 1.0),
];

/// Relative number of sessions starting in each local hour of the day.
pub const HOUR_WEIGHTS: [u32; 24] = [
    10, 6, 3, 2, 2, 3, 8, 20, 30, 35, 35, 40, 50, 45, 40, 40, 40, 45, 55, 70, 80, 80, 60, 30,
];

/// The page a person lands on in their very first session.
pub const LANDING: u64 = 0;
pub const PAGES: [&str; 9] = [
    "landing",
    "home",
    "category",
    "search",
    "promo",
    "product_list",
    "cart",
    "profile",
    "coupon",
];
/// How often each page is viewed after landing.
pub const PAGE_WEIGHTS: [u32; 9] = [0, 30, 20, 15, 10, 20, 8, 5, 4];
pub const SHARE_TARGETS: [&str; 4] = ["wechat_friend", "moments", "weibo", "copy_link"];
pub const SKUS: u64 = 400;

/// Price of a product in cents; fixed for a product whatever the seed.
pub fn price_cents(sku: u64) -> i64 {
    const POINTS: [i64; 16] = [
        990, 1_290, 1_990, 2_590, 2_990, 3_900, 4_990, 5_990, 6_990, 8_990, 9_900, 12_900, 15_900,
        19_900, 29_900, 59_900,
    ];
    let h = hash(0x5EED_5C05, &[sku]);
    let i = usize::try_from(h % POINTS.len() as u64).expect("below POINTS.len()");
    POINTS[i] + if h & 0x300 == 0 { 9 } else { 0 }
}

/// An 11-digit mobile number starting with 1, distinct for distinct persons below 10^8.
pub fn phone(seed: u64, person: u64) -> u64 {
    const PREFIXES: [u64; 12] = [130, 131, 132, 135, 136, 137, 138, 139, 150, 158, 186, 188];
    let i = hash(seed, &[0x9403, person]) % PREFIXES.len() as u64;
    let prefix = PREFIXES[usize::try_from(i).expect("below PREFIXES.len()")];
    let body = (person.wrapping_mul(7_654_321) + seed % 100_000_000) % 100_000_000;
    prefix * 100_000_000 + body
}

/// When a person registers, if at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Register {
    Never,
    FirstSession,
    NextVisit,
}

/// The traits a person keeps for the whole simulation.
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    pub channel: usize,
    pub loyal: bool,
    pub register: Register,
    pub phone_on_register: bool,
    /// The account id is sent as the `user` shorthand instead of `ids.uid`.
    pub account_as_user: bool,
    /// After registering, the person later logs in from a second device with its own openid.
    pub second_device: bool,
    /// The first session links the openid with a WeChat unionid.
    pub unionid: bool,
    pub buying: f64,
}

impl Profile {
    /// The traits of person number `person`; a share `regulars` of them (times their channel's
    /// retention) are loyal.
    pub fn of(seed: u64, person: u64, regulars: f64) -> Profile {
        let h = |salt: u64| unit(hash(seed, &[0x9E0F, person, salt]));
        // A whole number in 0..1000: h is in [0, 1).
        #[allow(clippy::cast_possible_truncation)]
        let mut pick = (h(0) * 1_000.0) as u32;
        let mut channel = CHANNELS.len() - 1;
        for (i, c) in CHANNELS.iter().enumerate() {
            if pick < c.share {
                channel = i;
                break;
            }
            pick -= c.share;
        }
        let c = &CHANNELS[channel];
        let register = match h(1) {
            r if r >= 0.24 * c.buying.min(1.2) => Register::Never,
            _ if h(2) < 0.65 => Register::FirstSession,
            _ => Register::NextVisit,
        };
        Profile {
            channel,
            loyal: h(3) < regulars * c.retention,
            register,
            phone_on_register: h(4) < 0.6,
            account_as_user: h(5) < 0.5,
            second_device: h(6) < 0.25,
            unionid: h(7) < 0.05,
            buying: c.buying * (0.5 + h(8)),
        }
    }
}

/// How persons come back: the chance of being active on the first day after arrival, which
/// decays day by day, and a share of regulars (loyal persons) who keep a floor chance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    /// Share of loyal persons, before the channel's retention multiplier.
    pub regulars: f64,
    /// A loyal person's chance of being active on any later day, at least; also the most
    /// anyone's chance can be.
    pub floor: f64,
    /// The chance of coming back the day after arrival, before the channel's multiplier.
    pub first_day: f64,
}

impl Shape {
    /// Most persons come once or twice (DAU/MAU about 0.05-0.1): `generate --shape sparse`.
    pub const SPARSE: Shape = Shape {
        regulars: 0.02,
        floor: 0.3,
        first_day: 0.12,
    };

    /// A product persons come back to: a share `1.5 * stickiness` of regulars active on 35% of
    /// days, and a day-one return of about 30%. Measured DAU/MAU is in README's `generate`
    /// section; it lands near `stickiness` once a month of arrivals has passed.
    pub fn sticky(stickiness: f64) -> Shape {
        Shape {
            regulars: (1.5 * stickiness).clamp(0.0, 1.0),
            floor: 0.35,
            first_day: 0.28,
        }
    }
}

/// Ready-made shapes of a log (`generate --shape`): who comes back, and how long they stay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Preset {
    /// A mini-program people use: DAU/MAU about 0.2, short visits. The generator's default.
    #[default]
    Real,
    /// Most persons come once or twice (DAU/MAU 0.05-0.1), long visits.
    Sparse,
    /// DAU/MAU about 0.35, long visits.
    Dense,
}

impl Preset {
    /// Who comes back.
    pub fn shape(self) -> Shape {
        match self {
            Preset::Real => Shape::sticky(0.2),
            Preset::Sparse => Shape::SPARSE,
            Preset::Dense => Shape::sticky(0.35),
        }
    }

    /// How long each active day is.
    pub fn sessions(self) -> Sessions {
        match self {
            Preset::Real => Sessions::SHORT,
            Preset::Sparse | Preset::Dense => Sessions::LONG,
        }
    }
}

/// How long a person's active day is: the chances of a second and of a third session, and how
/// many pages and products each session views (`min + below(spread)` of each, in random order,
/// after the session's opening page).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sessions {
    /// Chance of a second session on an active day.
    pub second: f64,
    /// Chance of a third session on an active day.
    pub third: f64,
    /// Pages viewed besides the opening one: `(min, spread)`.
    pub pages: (u64, u64),
    /// Products viewed: `(min, spread)`.
    pub products: (u64, u64),
}

impl Sessions {
    /// Short visits, as in a real mini-program: about 4-5 events and 1.2 sessions per active
    /// person-day. The generator's default.
    pub const SHORT: Sessions = Sessions {
        second: 0.15,
        third: 0.03,
        pages: (0, 2),
        products: (1, 2),
    };

    /// Long browsing visits: about 17 events and 1.4 sessions per active person-day.
    pub const LONG: Sessions = Sessions {
        second: 0.3,
        third: 0.08,
        pages: (2, 7),
        products: (2, 7),
    };
}

/// The chance of coming back, decaying day by day after arrival; loyal persons keep a floor.
pub struct Retention {
    shape: Shape,
    /// `DECAY^(k-1)` for day `k`, by repeated multiplication so that it is the same everywhere.
    decay: Vec<f64>,
}

impl Retention {
    const DECAY: f64 = 0.8;

    /// Covers days `1..days` after arrival.
    pub fn new(days: u32, shape: Shape) -> Self {
        let decay = std::iter::successors(Some(1.0), |x| Some(x * Self::DECAY))
            .take(days as usize)
            .collect();
        Retention { shape, decay }
    }

    /// An upper bound of [`Retention::chance`] for every person and day.
    pub fn max_chance(&self) -> f64 {
        self.shape.floor
    }

    /// Chance that the person is active on day `k >= 1` after arrival.
    pub fn chance(&self, p: &Profile, k: u32) -> f64 {
        // Past the days it covers (a stream without end), the decay is taken as spent.
        let decay = self.decay.get(k as usize - 1).copied().unwrap_or(0.0);
        let decaying = self.shape.first_day * CHANNELS[p.channel].retention * decay;
        if p.loyal {
            decaying.max(self.shape.floor)
        } else {
            decaying.min(self.shape.floor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_weights_are_consistent() {
        assert_eq!(CHANNELS.iter().map(|c| c.share).sum::<u32>(), 1_000);
        assert!(CHANNELS
            .iter()
            .enumerate()
            .all(|(i, c)| (c.cac_cents > 0) == (i < PAID_CHANNELS)));
        assert_eq!(PAGES.len(), PAGE_WEIGHTS.len());
        assert_eq!(PAGE_WEIGHTS[usize::try_from(LANDING).unwrap()], 0);
    }

    #[test]
    fn phones_are_distinct_mobile_numbers() {
        let mut bodies: Vec<u64> = (0..50_000).map(|p| phone(3, p)).collect();
        assert!(bodies
            .iter()
            .all(|&p| (10_000_000_000..20_000_000_000).contains(&p)));
        bodies.iter_mut().for_each(|p| *p %= 100_000_000);
        bodies.sort_unstable();
        bodies.dedup();
        assert_eq!(bodies.len(), 50_000);
    }

    #[test]
    fn profiles_spread_over_channels_and_traits() {
        let shape = Shape::SPARSE;
        let ps: Vec<Profile> = (0..20_000)
            .map(|p| Profile::of(11, p, shape.regulars))
            .collect();
        for (i, c) in CHANNELS.iter().enumerate() {
            let n = ps.iter().filter(|p| p.channel == i).count() as f64 / 20.0;
            assert!((n - f64::from(c.share)).abs() < 20.0, "{:?}: {n}", c.name);
        }
        let registering = ps.iter().filter(|p| p.register != Register::Never).count();
        assert!((3_000..6_000).contains(&registering), "{registering}");
        let r = Retention::new(60, shape);
        for p in &ps[..100] {
            assert!(r.chance(p, 1) > r.chance(p, 10) || p.loyal);
            assert!((1..60).all(|k| r.chance(p, k) <= r.max_chance()));
        }
        assert!(ps
            .iter()
            .any(|p| p.loyal && r.chance(p, 59) == r.max_chance()));
    }
}
