//! The conversion table of `docs/grading.md`, written once more in plain Rust:
//! the oracle the database tests compare the SQL of `marain::sql::convert`
//! against. It shares no code with that SQL, so a mistake in either shows.

use marain::FieldType;

/// A stored value, read back typed. Date-times are RFC 3339 text in UTC.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    Time(String),
}

fn text_type(t: FieldType) -> bool {
    matches!(
        t,
        FieldType::Text | FieldType::LongText | FieldType::RichText | FieldType::Slug | FieldType::EntityReference
    )
}

/// What `v` (of type `from`) becomes as `to`; `None`: the value is refused (the
/// change is BLOCKED while the value is there). NULL stays NULL.
pub fn expected(from: FieldType, to: FieldType, v: &Value) -> Option<Value> {
    use FieldType::*;
    if *v == Value::Null {
        return Some(Value::Null);
    }
    if from == to || (text_type(from) && text_type(to)) {
        return Some(v.clone());
    }
    match (v, to) {
        (Value::Text(s), Integer) => integer(s).map(Value::Int),
        (Value::Float(f), Integer) => {
            (f.fract() == 0.0 && f.abs() < 9_223_372_036_854_775_808.0).then_some(Value::Int(*f as i64))
        }
        (Value::Bool(b), Integer) => Some(Value::Int(i64::from(*b))),
        (Value::Text(s), Float) => float(s).map(Value::Float),
        (Value::Int(i), Float) => (i.unsigned_abs() <= 1 << 53).then_some(Value::Float(*i as f64)),
        (Value::Bool(b), Float) => Some(Value::Float(if *b { 1.0 } else { 0.0 })),
        (Value::Text(s), Boolean) => match s.as_str() {
            "true" | "1" => Some(Value::Bool(true)),
            "false" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        (Value::Int(i), Boolean) => matches!(i, 0 | 1).then_some(Value::Bool(*i == 1)),
        (Value::Float(f), Boolean) => (*f == 0.0 || *f == 1.0).then_some(Value::Bool(*f == 1.0)),
        (Value::Text(s), Datetime) => datetime(s).map(Value::Time),
        (Value::Int(i), _) if text_type(to) => Some(Value::Text(i.to_string())),
        (Value::Float(f), _) if text_type(to) => shortest(*f).map(Value::Text),
        (Value::Bool(b), _) if text_type(to) => Some(Value::Text(b.to_string())),
        (Value::Time(t), _) if text_type(to) => datetime(t).map(Value::Text),
        _ => None,
    }
}

/// An optional sign and digits, within a signed 64-bit integer.
fn integer(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.trim_start_matches('0');
    let smallest = s.starts_with('-') && magnitude == "9223372036854775808";
    if magnitude.len() > 19 || (magnitude.len() == 19 && magnitude > "9223372036854775807" && !smallest) {
        return None;
    }
    s.parse().ok()
}

/// A decimal (exponent of at most 3 digits) read exactly: at most 15
/// significant digits, zero or a normal float below 1e308.
fn float(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if let Some(e) = exponent {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    if mantissa.starts_with('.') && fraction.is_empty() {
        return None;
    }
    let significant = format!("{whole}{fraction}");
    if significant.trim_matches('0').len() > 15 {
        return None;
    }
    let f: f64 = s.parse().ok()?;
    let zero = significant.trim_matches('0').is_empty();
    (zero || (f.abs() >= 1e-307 && f.abs() < 1e308)).then_some(f)
}

/// `f` as C's `%.15g` writes it, when that reads back as `f` (at most 15
/// significant digits are needed).
pub fn shortest(f: f64) -> Option<String> {
    let sci = format!("{f:e}"); // shortest digits that read back: `-1.25e-7`
    let (mantissa, exp) = sci.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if digits.len() > 15 {
        return None;
    }
    let sign = if negative { "-" } else { "" };
    if !(-4..15).contains(&exp) {
        let rest = &digits[1..];
        let dot = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let esign = if exp < 0 { '-' } else { '+' };
        return Some(format!("{sign}{}{dot}e{esign}{:02}", &digits[..1], exp.abs()));
    }
    let point = exp + 1; // digits before the decimal point
    let text = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
    };
    Some(format!("{sign}{text}"))
}

/// A date, or a date and time (`T` or a space; seconds and up to six fraction
/// digits optional), then `Z` or `±HH:MM` (hours up to 14) or nothing (UTC):
/// the instant as `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
pub fn datetime(s: &str) -> Option<String> {
    use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};
    let num = |t: &str| -> Option<u32> { t.bytes().all(|b| b.is_ascii_digit()).then(|| t.parse().ok())? };
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = num(&s[..4])?;
    if year == 0 {
        return None;
    }
    let month = Month::try_from(num(&s[5..7])? as u8).ok()?;
    let date = Date::from_calendar_date(year as i32, month, num(&s[8..10])? as u8).ok()?;
    let mut rest = &s[10..];
    let (mut time, mut fraction) = (Time::MIDNIGHT, String::new());
    let mut offset = UtcOffset::UTC;
    if !rest.is_empty() {
        rest = rest.strip_prefix(['T', ' '])?;
        if rest.len() < 5 || rest.as_bytes()[2] != b':' {
            return None;
        }
        let (h, m) = (num(&rest[..2])?, num(&rest[3..5])?);
        rest = &rest[5..];
        let mut sec = 0;
        if let Some(r) = rest.strip_prefix(':') {
            sec = num(r.get(..2)?)?;
            rest = &r[2..];
            if let Some(r) = rest.strip_prefix('.') {
                let n = r.bytes().take_while(u8::is_ascii_digit).count();
                if n == 0 || n > 6 {
                    return None;
                }
                fraction = r[..n].to_string();
                rest = &r[n..];
            }
        }
        if h > 23 || m > 59 || sec > 59 {
            return None;
        }
        time = Time::from_hms(h as u8, m as u8, sec as u8).ok()?;
        if rest == "Z" {
            rest = "";
        } else if let Some(sign) = rest.chars().next().filter(|c| *c == '+' || *c == '-') {
            let zone = &rest[1..];
            if zone.len() != 5 || zone.as_bytes()[2] != b':' {
                return None;
            }
            let (oh, om) = (num(&zone[..2])?, num(&zone[3..])?);
            if oh > 14 || om > 59 {
                return None;
            }
            let k = if sign == '-' { -1 } else { 1 };
            offset = UtcOffset::from_hms(k * oh as i8, k * om as i8, 0).ok()?;
            rest = "";
        }
    }
    if !rest.is_empty() {
        return None;
    }
    let utc = PrimitiveDateTime::new(date, time).assume_offset(offset).to_offset(UtcOffset::UTC);
    let fraction = fraction.trim_end_matches('0');
    let dot = if fraction.is_empty() { String::new() } else { format!(".{fraction}") };
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{dot}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    ))
}
