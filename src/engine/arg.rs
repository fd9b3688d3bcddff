//! A value bound to a placeholder, the same for both backends: what the
//! engine hands `database.rs` to bind, and what a backend (`backend/`) says a
//! validated value becomes.

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Text(s.to_string())
    }
}

impl From<&String> for Arg {
    fn from(s: &String) -> Self {
        Arg::Text(s.clone())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Text(s)
    }
}

impl From<i64> for Arg {
    fn from(i: i64) -> Self {
        Arg::Int(i)
    }
}

impl<T: Into<Arg>> From<Option<T>> for Arg {
    fn from(v: Option<T>) -> Self {
        v.map(Into::into).unwrap_or(Arg::Null)
    }
}
