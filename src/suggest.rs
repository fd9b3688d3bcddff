//! "Did you mean": the closest of the names a place allows, for an error about
//! a name that is not one of them (a field type, a key, an entity). A
//! suggestion is made only when one name is clearly close: a typo or two, not a
//! different word.

/// The candidate closest to `word`, if it is within two edits (one for words of
/// up to four letters) and no other candidate is as close.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let exact = word;
    let word = word.to_ascii_lowercase();
    let limit = if word.chars().count() <= 4 { 1 } else { 2 };
    let mut best: Option<(usize, &str)> = None;
    let mut tied = false;
    for candidate in candidates {
        if candidate == exact {
            return None;
        }
        // Case differences count as one edit: `Boolean` is close to `boolean`.
        let distance = strsim::damerau_levenshtein(&word, &candidate.to_ascii_lowercase()).max(1);
        if distance > limit {
            continue;
        }
        match best {
            Some((d, _)) if distance > d => {}
            Some((d, _)) if distance == d => tied = true,
            _ => {
                best = Some((distance, candidate));
                tied = false;
            }
        }
    }
    best.filter(|_| !tied).map(|(_, name)| name)
}

/// ` — did you mean `x`?` when one candidate is close, or nothing.
pub fn hint<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates).map(|name| format!(" — did you mean `{name}`?")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let types = ["text", "long_text", "integer", "float", "boolean", "datetime", "entity_reference"];
        assert_eq!(closest("txt", types), Some("text"));
        assert_eq!(closest("strnig", ["string", "text"]), Some("string"));
        assert_eq!(closest("integr", types), Some("integer"));
        assert_eq!(closest("Boolean", types), Some("boolean"), "case does not count");
        assert_eq!(closest("colour", types), None, "not a typo of anything");
        assert_eq!(closest("text", types), None, "a name that is allowed needs no suggestion");
        assert_eq!(closest("ab", ["ac", "ad"]), None, "two equally close: no guess");
        assert_eq!(hint("nme", ["name", "id"]), " — did you mean `name`?");
    }
}
