//! Money as exact integer cents: parsing JSON numbers and decimal strings, and printing.

/// Parses a decimal amount with at most two fraction digits into cents.
pub fn parse_amount(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty()
        || !digits_ok(int_part)
        || !digits_ok(frac_part)
        || (body.contains('.') && frac_part.is_empty())
    {
        return Err(format!("amount {text:?} is not a decimal number"));
    }
    let frac = frac_part.trim_end_matches('0');
    if frac.len() > 2 {
        return Err(format!("amount {text:?} has more than 2 fraction digits"));
    }
    let whole: i64 = int_part
        .parse()
        .ok()
        .filter(|v: &i64| *v < i64::MAX / 100)
        .ok_or_else(|| format!("amount {text:?} is too large"))?;
    let mut cents = whole * 100;
    let mut scale = 10;
    for b in frac.bytes() {
        cents += (b - b'0') as i64 * scale;
        scale /= 10;
    }
    Ok(if neg { -cents } else { cents })
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
        assert_eq!(parse_amount("-5.5"), Ok(-550));
        assert_eq!(parse_amount("1.50000"), Ok(150));
    }

    #[test]
    fn rejects_sub_cent_and_junk() {
        for bad in [
            "1.005",
            "abc",
            "",
            "1.",
            ".5",
            "1e3",
            "1,5",
            "99999999999999999999",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(format_cents(1234), "12.34");
        assert_eq!(format_cents(-5), "-0.05");
        for c in [-100_001, -1, 0, 7, 99_999] {
            assert_eq!(parse_amount(&format_cents(c)), Ok(c));
        }
    }
}
