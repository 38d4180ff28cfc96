//! Acquisition family: new users by first-touch channel, spend, CAC, revenue and ROAS, in exact cents.

use differential_dataflow::operators::CountTotal;

use super::series::{count_rows, money_rows, rate_rows};
use super::{Base, Coll, Rows};
use crate::facts::{ChannelId, Ident, Person};
use crate::metric::{Dims, Metric};
use crate::time::Day;

/// All acquisition rows. `purchases` and `spend` carry cents as their multiplicity.
pub fn rows<'s>(
    base: &Base<'s>,
    p_purchases: Coll<'s, (Person, Day)>,
    purchases: Coll<'s, (Ident, Day)>,
    spend: Coll<'s, (Day, ChannelId)>,
) -> Rows<'s> {
    let cal = base.plan.config.calendar.clone();
    let channel_of = base
        .firsts
        .clone()
        .map(|(p, f)| (p, f.channel))
        .arrange_by_key_named("Arrange: ChannelOf");
    let new_by_channel = base
        .firsts
        .clone()
        .map(move |(_, f)| (cal.day(f.ts), f.channel))
        .count_total();
    let new_total = new_by_channel
        .clone()
        .explode(|((_, c), n)| Some((c, n)))
        .count_total();
    let spend_daily = spend.clone().count_total();
    let spend_total = spend.map(|(_, c)| c).count_total();
    let revenue = purchases.map(|(_, d)| d).count_total();
    let revenue_by_channel = p_purchases
        .join_core(channel_of, |_p, d, c| Some((*d, *c)))
        .count_total();
    let revenue_total = revenue_by_channel
        .clone()
        .explode(|((_, c), n)| Some((c, n)))
        .count_total();

    count_rows(new_by_channel.clone(), |(d, c)| {
        (Metric::NewUsersByChannel, Dims::DayChannel(d, c))
    })
    .concat(money_rows(spend_daily.clone(), |(d, c)| {
        (Metric::Spend, Dims::DayChannel(d, c))
    }))
    .concat(rate_rows(spend_daily, new_by_channel, 100, |&(d, c)| {
        (Metric::Cac, Dims::DayChannel(d, c))
    }))
    .concat(rate_rows(spend_total.clone(), new_total, 100, |&c| {
        (Metric::CacTotal, Dims::Channel(c))
    }))
    .concat(money_rows(revenue, |d| (Metric::Revenue, Dims::Day(d))))
    .concat(money_rows(revenue_by_channel, |(d, c)| {
        (Metric::RevenueByChannel, Dims::DayChannel(d, c))
    }))
    .concat(rate_rows(revenue_total, spend_total, 1, |&c| {
        (Metric::RoasTotal, Dims::Channel(c))
    }))
}
