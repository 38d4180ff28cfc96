//! Hand-written JSON pieces for the generator's lines: keys, integers, zero-padded digits, money.

pub fn push_key(buf: &mut Vec<u8>, key: &str) {
    buf.push(b'"');
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(b"\":");
}

/// `"amount":` followed by a JSON number (`12`, `12.5`, `12.34`) or a decimal string (`"12.50"`).
pub fn push_amount(buf: &mut Vec<u8>, cents: i64, text: bool) {
    push_key(buf, "amount");
    let (whole, frac) = (cents.unsigned_abs() / 100, cents.unsigned_abs() % 100);
    if cents < 0 {
        buf.push(b'-');
    }
    if text {
        buf.push(b'"');
        push_u64(buf, whole);
        buf.push(b'.');
        push_padded(buf, frac, 2);
        buf.push(b'"');
    } else {
        push_u64(buf, whole);
        if frac % 10 != 0 {
            buf.push(b'.');
            push_padded(buf, frac, 2);
        } else if frac != 0 {
            buf.push(b'.');
            push_u64(buf, frac / 10);
        }
    }
}

pub fn push_i64(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    push_u64(buf, v.unsigned_abs());
}

pub fn push_u64(buf: &mut Vec<u8>, v: u64) {
    push_padded(buf, v, 1);
}

/// Decimal digits of `v`, left-padded with zeros to at least `width`.
pub fn push_padded(buf: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut i = tmp.len();
    while v > 0 {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    i = i.min(tmp.len() - width);
    buf.extend_from_slice(&tmp[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_keep_two_fraction_digits_at_most() {
        for (cents, num, txt) in [
            (120_000, "1200", "\"1200.00\""),
            (1_205, "12.05", "\"12.05\""),
            (1_250, "12.5", "\"12.50\""),
            (7, "0.07", "\"0.07\""),
        ] {
            for (as_text, want) in [(false, num), (true, txt)] {
                let mut buf = Vec::new();
                push_amount(&mut buf, cents, as_text);
                assert_eq!(
                    String::from_utf8(buf).unwrap(),
                    format!("\"amount\":{want}")
                );
            }
        }
    }

    #[test]
    fn integers_and_padding() {
        let mut buf = Vec::new();
        push_i64(&mut buf, -1_790_813_100_000);
        buf.push(b' ');
        push_u64(&mut buf, 0);
        buf.push(b' ');
        push_padded(&mut buf, 7, 3);
        buf.push(b' ');
        push_padded(&mut buf, 12_345, 2);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "-1790813100000 0 007 12345"
        );
    }
}
