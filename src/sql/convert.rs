//! Converting a stored value from one field type to another: one meaning, two
//! spellings. The promise is the conversion table of `docs/grading.md`
//! ("Conversions"); `tests/conversions.rs` checks it cell by cell on both
//! databases.
//!
//! Two functions per conversion, written side by side for both dialects:
//! - [`fits`]: the condition a non-NULL value meets when it converts keeping its
//!   meaning. The probe of a type change counts the values that fail it, so the
//!   grade and the conversion cannot disagree: a value the probe passes is
//!   exactly a value [`value`] converts as promised.
//! - [`value`]: the converted value. NULL stays NULL. A value [`fits`] refuses is
//!   never meant to reach it (the probe blocks the change); if one did, it makes
//!   PostgreSQL's statement fail and stays as it was on SQLite, never a silent
//!   NULL or 0.
//!
//! Text patterns are regular expressions in the syntax both databases share
//! (PostgreSQL's `~`, SQLite's `REGEXP` as sqlx registers it), so the verdict on a
//! text is the same text rule on both. Nothing here depends on the session's
//! time zone: a date-time without a zone is read as UTC.

use super::{string_literal, Dialect};
use crate::model::FieldType;

/// A whole number: optional sign, digits (leading zeros allowed), nothing else.
const INTEGER: &str = "^[-+]?[0-9]+$";
/// A decimal number with an optional exponent of at most three digits.
const NUMBER: &str = r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3})?$";
/// A [`NUMBER`] that is zero.
const ZERO: &str = r"^[-+]?[0.]*([eE].*)?$";
/// More than 15 significant digits: from a non-zero digit to a non-zero digit.
const LONG: &str = r"[1-9]\.?([0-9]\.?){14}[0-9.]*[1-9]";
/// The date-times a text may hold: a date, or a date and a time (seconds and up
/// to six fractional digits optional), then optionally `Z` or an offset.
const DATETIME: &str = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[-+](0[0-9]|1[0-4]):[0-5][0-9])?)?$";
/// A [`DATETIME`] that names its zone.
const ZONED: &str = "(Z|[-+][0-9]{2}:[0-9]{2})$";

/// How a field type's values are stored, as far as converting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    Float,
    Boolean,
    Datetime,
}

fn kind(t: FieldType) -> Kind {
    match t {
        FieldType::Text | FieldType::LongText | FieldType::RichText | FieldType::Slug | FieldType::EntityReference => {
            Kind::Text
        }
        FieldType::Integer => Kind::Integer,
        FieldType::Float => Kind::Float,
        FieldType::Boolean => Kind::Boolean,
        FieldType::Datetime => Kind::Datetime,
    }
}

/// Whether a change from `from` to `to` converts stored values (and so backs
/// them up, for a rollback that restores them exactly). Text types share one
/// storage: moving between them converts nothing.
pub fn converts(from: FieldType, to: FieldType) -> bool {
    kind(from) != kind(to)
}

/// `x` matches regular expression `re`.
fn matches(d: Dialect, x: &str, re: &str) -> String {
    match d {
        Dialect::Postgres => format!("({x} ~ {})", string_literal(d, re)),
        Dialect::Sqlite => format!("({x} REGEXP {})", string_literal(d, re)),
    }
}

/// The condition a non-NULL `x` (SQL, of type `from`) meets when it converts to
/// `to` as the table promises; `None` when every value does.
pub fn fits(d: Dialect, x: &str, from: FieldType, to: FieldType) -> Option<String> {
    use Kind::*;
    let is = |re| matches(d, x, re);
    let never = || Some("1 = 0".to_string());
    match (kind(from), kind(to)) {
        (Text, Text) | (Integer, Integer) | (Float, Float) | (Boolean, Boolean) | (Datetime, Datetime) => None,
        (Text, Integer) => {
            // Within a signed 64-bit integer: at most 19 digits after the sign
            // and leading zeros, and not beyond the largest (or smallest) when 19.
            let digits = format!("ltrim(ltrim({x}, '+-'), '0')");
            let collate = if d == Dialect::Postgres { " COLLATE \"C\"" } else { "" };
            Some(format!(
                "CASE WHEN {} THEN length({digits}) < 19 OR (length({digits}) = 19 AND ({digits}{collate} <= '9223372036854775807' \
                 OR (substr({x}, 1, 1) = '-' AND {digits} = '9223372036854775808'))) ELSE 1 = 0 END",
                is(INTEGER)
            ))
        }
        (Float, Integer) => Some(match d {
            Dialect::Postgres => {
                format!("{x} = trunc({x}) AND abs({x}) < CAST('9223372036854775808' AS DOUBLE PRECISION)")
            }
            Dialect::Sqlite => format!("{x} = CAST({x} AS INTEGER) AND abs({x}) < 9223372036854775808.0"),
        }),
        (Boolean, Integer | Float) => None,
        (Text, Float) => {
            // The text is read exactly (15 significant digits at most) and the
            // number is a finite, normal float (zero included).
            let number = match d {
                Dialect::Postgres => format!("abs(CAST({x} AS NUMERIC))"),
                Dialect::Sqlite => format!("abs(CAST({x} AS REAL))"),
            };
            Some(format!(
                "CASE WHEN {} THEN NOT {} AND ({} OR ({number} >= 1e-307 AND {number} < 1e308)) ELSE 1 = 0 END",
                is(NUMBER),
                is(LONG),
                is(ZERO)
            ))
        }
        // Every integer within ±2^53 is a float exactly; beyond, not all are.
        (Integer, Float) => Some(format!("{x} BETWEEN -9007199254740992 AND 9007199254740992")),
        (Text, Boolean) => Some(format!("{x} IN ('true', 'false', '1', '0')")),
        (Integer | Float, Boolean) => Some(format!("{x} IN (0, 1)")),
        (Text, Datetime) => {
            let date = format!("substr({x}, 1, 10)");
            let real_date = match d {
                Dialect::Sqlite => format!("date({date}) = {date}"),
                Dialect::Postgres => format!(
                    "to_char(make_date(CAST(substr({x}, 1, 4) AS INTEGER), CAST(substr({x}, 6, 2) AS INTEGER), 1) \
                     + (CAST(substr({x}, 9, 2) AS INTEGER) - 1), 'YYYY-MM-DD') = {date}"
                ),
            };
            Some(format!(
                "CASE WHEN {} THEN substr({x}, 1, 4) <> '0000' AND {real_date} ELSE 1 = 0 END",
                is(DATETIME)
            ))
        }
        // The shortest text that reads back as the same float, when it has at
        // most 15 significant digits (what both databases write alike).
        (Float, Text) => Some(match d {
            Dialect::Sqlite => format!("CAST(printf('%.15g', {x}) AS REAL) = {x}"),
            Dialect::Postgres => format!(
                "length(trim(BOTH '0' FROM regexp_replace(split_part(CAST({x} AS TEXT), 'e', 1), '[^0-9]', '', 'g'))) <= 15"
            ),
        }),
        // SQLite keeps a date-time as the text it was given; one it cannot read
        // has no UTC form.
        (Datetime, Text) => match d {
            Dialect::Postgres => None,
            Dialect::Sqlite => fits(d, x, FieldType::Text, FieldType::Datetime),
        },
        (Integer | Boolean, Text) => None,
        (Datetime, _) | (_, Datetime) => never(),
    }
}

/// `x` (SQL, of type `from`) converted to `to`. NULL stays NULL.
pub fn value(d: Dialect, x: &str, from: FieldType, to: FieldType) -> String {
    use Kind::*;
    let pg = d == Dialect::Postgres;
    let cast = |t: &str| format!("CAST({x} AS {t})");
    // A conversion no value survives: PostgreSQL's cast fails on any value,
    // SQLite keeps the value as it was (its columns take any type).
    let refused = |t: &str| if pg { format!("CAST(CAST({x} AS TEXT) AS {t})") } else { x.to_string() };
    match (kind(from), kind(to)) {
        (a, b) if a == b => x.to_string(),
        (Text | Float, Integer) => cast(if pg { "BIGINT" } else { "INTEGER" }),
        (Boolean, Integer) if pg => cast("INTEGER"),
        (Boolean, Integer) => x.to_string(),
        (Text | Integer, Float) => cast(if pg { "DOUBLE PRECISION" } else { "REAL" }),
        (Boolean, Float) if pg => format!("CAST(CAST({x} AS INTEGER) AS DOUBLE PRECISION)"),
        (Boolean, Float) => cast("REAL"),
        (Text, Boolean) if pg => cast("BOOLEAN"),
        (Text, Boolean) => {
            format!("CASE WHEN {x} IN ('true', '1') THEN 1 WHEN {x} IN ('false', '0') THEN 0 ELSE {x} END")
        }
        (Integer | Float, Boolean) if pg => format!("{x} <> 0"),
        (Integer | Float, Boolean) => format!("CASE WHEN {x} = 1 THEN 1 WHEN {x} = 0 THEN 0 ELSE {x} END"),
        (Text, Datetime) if pg => format!(
            "CASE WHEN {} THEN CAST({x} AS TIMESTAMPTZ) ELSE CAST({x} AS TIMESTAMP) AT TIME ZONE 'UTC' END",
            matches(d, x, ZONED)
        ),
        (Text | Datetime, Datetime | Text) if !pg => format!("COALESCE({}, {x})", sqlite_utc(x)),
        (Datetime, Text) => postgres_utc(x),
        (Integer | Float | Boolean, Text) if pg => cast("TEXT"),
        (Integer, Text) => cast("TEXT"),
        (Float, Text) => format!("CASE WHEN {x} IS NULL THEN NULL ELSE printf('%.15g', {x}) END"),
        (Boolean, Text) => format!("CASE {x} WHEN 1 THEN 'true' WHEN 0 THEN 'false' ELSE {x} END"),
        (_, Integer) => refused(if pg { "BIGINT" } else { "INTEGER" }),
        (_, Float) => refused("DOUBLE PRECISION"),
        (_, Boolean) => refused("BOOLEAN"),
        (_, Datetime) => refused("TIMESTAMPTZ"),
        (_, Text) => refused("TEXT"),
    }
}

/// A PostgreSQL timestamp as RFC 3339 text in UTC: `2026-03-01T10:00:00Z`, the
/// fraction only when there is one, without trailing zeros.
pub fn postgres_utc(x: &str) -> String {
    format!(
        "regexp_replace(to_char({x} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), {}, '') || 'Z'",
        string_literal(Dialect::Postgres, r"\.?0+$")
    )
}

/// A date-time text read by SQLite, as [`postgres_utc`] writes it. SQLite's date
/// functions keep milliseconds only, so the fraction is taken from the text itself
/// (an offset moves whole minutes, never the fraction).
fn sqlite_utc(x: &str) -> String {
    let zone = format!("ltrim(substr({x}, 21), '0123456789')");
    format!(
        "CASE WHEN substr({x}, 20, 1) = '.' THEN \
         strftime('%Y-%m-%dT%H:%M:%S', substr({x}, 1, 19) || {zone}) \
         || rtrim(rtrim('.' || substr({x}, 21, length({x}) - 20 - length({zone})), '0'), '.') || 'Z' \
         ELSE strftime('%Y-%m-%dT%H:%M:%S', {x}) || 'Z' END"
    )
}
