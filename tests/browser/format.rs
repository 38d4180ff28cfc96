//! The dashboard's number formats as the browser tests expect them: counts "1,234", money
//! "1,234.50", rates "23.4%", ROAS "1.25×"; a shown number must be the value rounded to its places.

use serde_json::Value;

/// How the page shows a metric: (decimals, suffix, scale of the shown number).
fn format_of(metric: &str) -> (usize, &'static str, f64) {
    match metric {
        "spend" | "revenue" | "revenue_by_channel" | "cac" | "cac_total" => (2, "", 1.0),
        "stickiness"
        | "retention_rate"
        | "funnel_conversion"
        | "ratio"
        | "sliding_retention"
        | "monthly_retention_rate"
        | "new_user_growth_weekly"
        | "trigger_conversion_rate"
        | "trigger_lift" => (1, "%", 100.0),
        "roas_total" => (2, "×", 1.0),
        _ => (0, "", 1.0),
    }
}

/// Parses "1,234.5" with exactly `decimals` fraction digits and commas every three digits.
fn parse_shown(text: &str, decimals: usize) -> Option<f64> {
    let (sign, body) = text.strip_prefix('-').map_or((1.0, text), |b| (-1.0, b));
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let groups: Vec<&str> = int.split(',').collect();
    let grouped = groups.iter().enumerate().all(|(i, g)| {
        g.bytes().all(|b| b.is_ascii_digit())
            && if i == 0 {
                (1..=3).contains(&g.len())
            } else {
                g.len() == 3
            }
    });
    let frac_ok = frac.len() == decimals && frac.bytes().all(|b| b.is_ascii_digit());
    if !grouped || !frac_ok || (decimals == 0) == body.contains('.') {
        return None;
    }
    format!(
        "{}{}{frac}",
        groups.concat(),
        if decimals > 0 { "." } else { "" }
    )
    .parse::<f64>()
    .ok()
    .map(|v| sign * v)
}

/// Whether `text` is `value` shown the page's way, to half a unit in the last shown place.
pub fn matches(metric: &str, text: &str, value: &Value) -> Result<(), String> {
    let (decimals, suffix, scale) = format_of(metric);
    let body = text
        .strip_suffix(suffix)
        .ok_or_else(|| format!("{text:?} should end with {suffix:?}"))?;
    let shown = parse_shown(body, decimals)
        .ok_or_else(|| format!("{text:?} is not a number with {decimals} decimals and commas"))?;
    let v = value
        .as_f64()
        .ok_or_else(|| format!("API value {value} is not a number"))?;
    if decimals == 0 {
        return match value.as_i64() {
            Some(i) if i as f64 == shown => Ok(()),
            _ => Err(format!("{text:?} is not the count {value}")),
        };
    }
    let tolerance = 0.5 * 10f64.powi(-i32::try_from(decimals).unwrap()) + 1e-9;
    if (shown - v * scale).abs() <= tolerance {
        Ok(())
    } else {
        Err(format!("{text:?} is not {value} (to {decimals} decimals)"))
    }
}
