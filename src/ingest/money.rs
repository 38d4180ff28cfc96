//! Money totals: the sums of purchase and of spend amounts accepted so far. Every money figure a
//! metric shows is part of one of them, so keeping both within `MAX_CENTS` keeps every figure
//! exact; an event that would push one past it is refused as `bad_amount`.

use crate::event::{format_cents, Reason, Rejection, MAX_CENTS};
use crate::plan::NameClass;

/// Cents accepted so far, by kind.
#[derive(Clone, Debug, Default)]
pub struct MoneyTotals {
    purchases: i64,
    spend: i64,
}

impl MoneyTotals {
    /// The purchase and spend totals, in cents.
    pub fn parts(&self) -> (i64, i64) {
        (self.purchases, self.spend)
    }

    /// Totals as `parts` gave them.
    pub fn from_parts((purchases, spend): (i64, i64)) -> Self {
        MoneyTotals { purchases, spend }
    }

    /// Takes erased purchases out of the revenue total.
    pub fn take_purchases(&mut self, cents: i64) {
        self.purchases = self.purchases.saturating_sub(cents);
    }

    /// Adds an accepted event's amount to its total, or refuses it when the total would pass
    /// `MAX_CENTS` (the total is then unchanged).
    pub fn add(&mut self, class: &NameClass, cents: Option<i64>) -> Result<(), Rejection> {
        let Some(cents) = cents else { return Ok(()) };
        let (total, what) = if class.purchase {
            (&mut self.purchases, "revenue")
        } else if class.spend {
            (&mut self.spend, "spend")
        } else {
            return Ok(());
        };
        match total.checked_add(cents).filter(|t| *t <= MAX_CENTS) {
            Some(t) => {
                *total = t;
                Ok(())
            }
            None => Err(Rejection::new(
                Reason::BadAmount,
                format!(
                    "`props.amount` {} would take total {what} past {}, the largest total kept exactly",
                    format_cents(cents),
                    format_cents(MAX_CENTS)
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_stop_at_the_largest_exact_sum_per_kind() {
        let purchase = NameClass {
            purchase: true,
            ..Default::default()
        };
        let spend = NameClass {
            spend: true,
            ..Default::default()
        };
        let mut t = MoneyTotals::default();
        assert!(t.add(&purchase, Some(MAX_CENTS)).is_ok());
        let r = t.add(&purchase, Some(1)).unwrap_err();
        assert_eq!(r.reason, Reason::BadAmount);
        assert!(r.detail.contains("revenue"), "{r}");
        assert!(t.add(&purchase, Some(0)).is_ok());
        assert!(
            t.add(&spend, Some(MAX_CENTS)).is_ok(),
            "spend has its own total"
        );
        assert!(t.add(&spend, Some(1)).is_err());
        assert!(
            t.add(&NameClass::default(), Some(MAX_CENTS)).is_ok(),
            "not money"
        );
    }
}
