//! Wording that counts: `1 value`, `2 values`, never `1 values` or `value(s)`.

/// `n` and the noun phrase that agrees with it: `count(1, "file needs fixing",
/// "files need fixing")` is "1 file needs fixing".
pub fn count(n: impl Into<i64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `n` before a plural phrase that starts with its noun (`rows …`, `values …`),
/// made singular for 1: the noun and its first plural verb (`are`, `have`,
/// `hold`, `appear`) agree, e.g. "1 row of `post` is deleted".
pub fn count_phrase(n: i64, phrase: &str) -> String {
    if n != 1 {
        return format!("{n} {phrase}");
    }
    let Some((noun, rest)) = phrase.split_once(' ') else {
        return format!("1 {}", phrase.strip_suffix('s').unwrap_or(phrase));
    };
    let noun = noun.strip_suffix('s').unwrap_or(noun);
    const VERBS: [(&str, &str); 5] =
        [(" are ", " is "), (" were ", " was "), (" have ", " has "), (" hold ", " holds "), (" appear ", " appears ")];
    let padded = format!(" {rest} ");
    let first =
        VERBS.iter().filter_map(|(many, one)| padded.find(many).map(|at| (at, *many, *one))).min_by_key(|(at, ..)| *at);
    let rest = match first {
        Some((at, many, one)) => format!("{}{one}{}", &padded[..at], &padded[at + many.len()..]),
        None => padded,
    };
    format!("1 {noun} {}", rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_and_many_agree() {
        assert_eq!(count(1, "value", "values"), "1 value");
        assert_eq!(count(0, "value", "values"), "0 values");
        assert_eq!(count(2, "file needs fixing", "files need fixing"), "2 files need fixing");
        assert_eq!(count_phrase(1, "rows are copied"), "1 row is copied");
        assert_eq!(count_phrase(3, "rows are copied"), "3 rows are copied");
        assert_eq!(count_phrase(1, "rows were changed"), "1 row was changed");
        assert_eq!(
            count_phrase(1, "rows of `post` are deleted (backed up first)"),
            "1 row of `post` is deleted (backed up first)"
        );
        assert_eq!(count_phrase(1, "rows have no value for `slug`"), "1 row has no value for `slug`");
        assert_eq!(
            count_phrase(1, "rows hold more than 2 values of `tags`"),
            "1 row holds more than 2 values of `tags`"
        );
        assert_eq!(count_phrase(1, "values of `x` appear more than once"), "1 value of `x` appears more than once");
        assert_eq!(
            count_phrase(1, "values of `x` beyond each row's first are dropped (backed up first)"),
            "1 value of `x` beyond each row's first is dropped (backed up first)"
        );
        assert_eq!(count_phrase(1, "rows would share the default of `k`"), "1 row would share the default of `k`");
    }
}
