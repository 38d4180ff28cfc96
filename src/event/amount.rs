//! Money as exact integer cents: parsing JSON number text and decimal strings, and printing.
//!
//! An amount is never negative (refunds are not modelled as negative purchases) and never
//! larger than [`MAX_CENTS`], the largest total that prints exactly as a JSON number; ingest
//! refuses an event whose amount would push a metric's total past it.

/// The largest amount, and the largest sum of amounts, tidemark keeps: 70 000 000 000 000.00.
/// Every money figure up to it prints as a JSON number that reads back as the exact decimal
/// (the spacing of doubles stays below a cent up to 2^46 units).
pub const MAX_CENTS: i64 = 7_000_000_000_000_000;

/// Why a text is not an amount; each variant holds the text as given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not the text of a JSON number.
    #[error("amount {text} is not a JSON number")]
    NotNumber { text: String },
    /// Not digits with an optional point and more digits.
    #[error("amount {text:?} is not a decimal number; write digits with an optional point, e.g. \"99.90\"")]
    NotDecimal { text: String },
    /// Above [`MAX_CENTS`].
    #[error(
        "amount {text} is above the largest amount, {}",
        format_cents(MAX_CENTS)
    )]
    TooLarge { text: String },
    /// A fraction of a cent.
    #[error("amount {text} has more than 2 fraction digits (money is kept in whole cents)")]
    SubCent { text: String },
    /// Below zero.
    #[error("amount {text} is negative; amounts are 0 or more (send a refund as its own event, not as a negative purchase)")]
    Negative { text: String },
}

/// Cents of a JSON number as written (`12`, `99.9`, `1.5e3`): exact, no float in between.
pub fn parse_number(text: &str) -> Result<i64, AmountError> {
    let (neg, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => {
            let e = &rest[i + 1..];
            let e = e.strip_prefix('+').unwrap_or(e);
            // An exponent beyond any i32 is far outside the allowed range either way.
            let exp = e.parse::<i32>().map_err(|_| out_of_range(text))?;
            (&rest[..i], exp as i64)
        }
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() || !all_digits(int) || !all_digits(frac) {
        return Err(AmountError::NotNumber { text: text.into() });
    }
    cents(neg, int, frac, exp, text)
}

/// Cents of a decimal string: digits, optionally a point and more digits, nothing else (no
/// sign, spaces or exponent), at most 2 fraction digits that are not zero.
pub fn parse_amount(text: &str) -> Result<i64, AmountError> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) if !f.is_empty() => (i, f),
        Some(_) => return Err(not_decimal(text)),
        None => (body, ""),
    };
    if int.is_empty() || !all_digits(int) || !all_digits(frac) {
        return Err(not_decimal(text));
    }
    cents(neg, int, frac, 0, text)
}

fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

fn not_decimal(text: &str) -> AmountError {
    AmountError::NotDecimal { text: text.into() }
}

fn out_of_range(text: &str) -> AmountError {
    AmountError::TooLarge { text: text.into() }
}

/// `int.frac * 10^exp` in cents, when that is a whole number of cents within range.
fn cents(neg: bool, int: &str, frac: &str, exp: i64, text: &str) -> Result<i64, AmountError> {
    let digits = int.bytes().chain(frac.bytes()).map(|b| (b - b'0') as i64);
    let len = (int.len() + frac.len()) as i64;
    // Digits before `whole` are whole cents; every digit after must be zero.
    let whole = int.len() as i64 + exp + 2;
    let mut value: i64 = 0;
    for (i, d) in digits.enumerate() {
        if (i as i64) < whole {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(d))
                .filter(|v| *v <= MAX_CENTS)
                .ok_or_else(|| out_of_range(text))?;
        } else if d != 0 {
            return Err(AmountError::SubCent { text: text.into() });
        }
    }
    if value != 0 {
        for _ in len..whole {
            value = value
                .checked_mul(10)
                .filter(|v| *v <= MAX_CENTS)
                .ok_or_else(|| out_of_range(text))?;
        }
    }
    if neg && value != 0 {
        return Err(AmountError::Negative { text: text.into() });
    }
    Ok(value)
}

/// Prints cents as a decimal with two fraction digits, e.g. `-12.05`.
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let a = cents.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_cents() {
        assert_eq!(parse_amount("99.9"), Ok(9990));
        assert_eq!(parse_amount("30.00"), Ok(3000));
        assert_eq!(parse_amount("1200"), Ok(120000));
        assert_eq!(parse_amount("0.01"), Ok(1));
        assert_eq!(parse_amount("1.50000"), Ok(150));
        assert_eq!(parse_amount("-0.00"), Ok(0));
        assert_eq!(parse_amount("70000000000000"), Ok(MAX_CENTS));
        assert_eq!(parse_number("99.9"), Ok(9990));
        assert_eq!(parse_number("1200"), Ok(120000));
        assert_eq!(parse_number("1.5e3"), Ok(150000));
        assert_eq!(parse_number("1234E-2"), Ok(1234));
        assert_eq!(parse_number("0.000e5"), Ok(0));
        assert_eq!(parse_number("-0"), Ok(0));
        assert_eq!(parse_number("7e13"), Ok(MAX_CENTS));
    }

    #[test]
    fn rejects_sub_cent_junk_signs_spaces_negatives_and_out_of_range() {
        for bad in [
            "1.005",
            "abc",
            "",
            "1.",
            ".5",
            "1e3",
            "1,5",
            " 5 ",
            "+5",
            "5 ",
            "-5.5",
            "-0.01",
            "70000000000000.01",
            "99999999999999999999",
            "92233720368547758.07",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "1.005",
            "1e-3",
            "-1",
            "7.0000000000001e13",
            "1e19",
            "1e99999999999",
            "12345678901234.561",
            "1.0000000000000001",
        ] {
            assert!(parse_number(bad).is_err(), "{bad:?}");
        }
        assert!(parse_amount("-5")
            .unwrap_err()
            .to_string()
            .contains("negative"));
        assert!(parse_number("1e30")
            .unwrap_err()
            .to_string()
            .contains("largest"));
        assert_eq!(
            parse_amount("1.005"),
            Err(AmountError::SubCent {
                text: "1.005".into()
            })
        );
    }

    #[test]
    fn formats() {
        assert_eq!(format_cents(1234), "12.34");
        assert_eq!(format_cents(-5), "-0.05");
        for c in [0, 7, 99_999, MAX_CENTS] {
            assert_eq!(parse_amount(&format_cents(c)), Ok(c));
        }
    }

    #[test]
    fn every_amount_up_to_the_largest_prints_exactly_as_a_json_number() {
        // What `Value::Money` prints: the double nearest to cents / 100.
        let printed = |c: i64| serde_json::json!(c as f64 / 100.0).to_string();
        let mut c = MAX_CENTS;
        for _ in 0..20_000 {
            let want = format_cents(c);
            let got = printed(c);
            let got = if got.contains('.') {
                got
            } else {
                format!("{got}.0")
            };
            assert_eq!(
                parse_number(&got),
                Ok(c),
                "{c} cents print as {got}, not {want}"
            );
            // Dense at the top, then spread out down to the smallest amounts.
            c -= if c > MAX_CENTS - 10_000 {
                1
            } else {
                c / 1000 + 1
            };
            if c < 0 {
                break;
            }
        }
    }
}
