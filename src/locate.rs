//! Finds where a key sits in a YAML text, so validation errors (found on the
//! parsed model, which has no positions) can still name a line and column.
//!
//! This reads the block-style layout schema files use; when a key cannot be found
//! the position falls back to the enclosing item or the top of the file.

/// Position (1-based line, column) of a top-level `key:`.
pub fn top_key(text: &str, key: &str) -> (usize, usize) {
    text.lines().enumerate().find(|(_, l)| key_at(l, key) == Some(0)).map(|(i, _)| (i + 1, 1)).unwrap_or((1, 1))
}

/// Position of `key:` inside item `index` of the top-level `fields:` sequence,
/// or of the item itself when the key is absent.
pub fn field_key(text: &str, index: usize, key: &str) -> (usize, usize) {
    item_key(text, "fields", index, key)
}

/// Position of `key:` inside item `index` of the top-level sequence `list`
/// (`fields:` of a schema, `records:` of a data file), or of the item itself
/// when the key is absent.
pub fn item_key(text: &str, list: &str, index: usize, key: &str) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| key_at(l, list) == Some(0)) else {
        return (1, 1);
    };
    let items: Vec<(usize, usize)> = lines
        .iter()
        .enumerate()
        .skip(start + 1)
        .take_while(|(_, l)| l.trim().is_empty() || l.starts_with(' ') || l.starts_with('-') || l.starts_with('#'))
        .filter_map(|(i, l)| {
            let indent = l.len() - l.trim_start().len();
            l.trim_start().starts_with("- ").then_some((i, indent))
        })
        .collect();
    let Some(&(item_line, dash_indent)) = items.get(index) else {
        return top_key(text, list);
    };
    let end =
        items.iter().find(|(i, ind)| *i > item_line && *ind == dash_indent).map(|(i, _)| *i).unwrap_or(lines.len());
    for (i, line) in lines.iter().enumerate().take(end).skip(item_line) {
        let body = if i == item_line { line.replacen('-', " ", 1) } else { line.to_string() };
        if let Some(col) = key_at(&body, key) {
            return (i + 1, col + 1);
        }
    }
    (item_line + 1, dash_indent + 1)
}

/// Position of a nested mapping key, e.g. `["values", "logging", "level"]`: each
/// segment is looked for inside the block of the one before. Where a segment is
/// missing (a list index, a key not written), the deepest one found is given.
pub fn key_path(text: &str, segments: &[&str]) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut found = (1, 1);
    let (mut from, mut parent_indent): (usize, Option<usize>) = (0, None);
    'segments: for segment in segments {
        for (i, line) in lines.iter().enumerate().skip(from) {
            let blank = line.trim().is_empty() || line.trim_start().starts_with('#');
            if blank {
                continue;
            }
            if parent_indent.is_some_and(|p| indent(line) <= p) {
                break;
            }
            if let Some(col) = key_at(line, segment) {
                found = (i + 1, col + 1);
                from = i + 1;
                parent_indent = Some(col);
                continue 'segments;
            }
        }
        break;
    }
    found
}

/// Column (0-based) at which `key:` starts on this line, if the line holds it.
fn key_at(line: &str, key: &str) -> Option<usize> {
    let trimmed = line.trim_start();
    let col = line.len() - trimmed.len();
    let rest = trimmed.strip_prefix(key)?;
    rest.starts_with(':').then_some(col)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "id: a\nname: A\nfields:\n  - id: t\n    type: text\n  - id: u\n    type: bogus\n";

    #[test]
    fn finds_keys_in_items() {
        assert_eq!(field_key(TEXT, 1, "type"), (7, 5));
        assert_eq!(field_key(TEXT, 0, "id"), (4, 5));
        assert_eq!(top_key(TEXT, "name"), (2, 1));
    }

    #[test]
    fn nested_keys() {
        let text = "id: x\nvalues:\n  app:\n    level: 1\n  logging:\n    # note\n    level: info\n";
        assert_eq!(key_path(text, &["values", "logging", "level"]), (7, 5));
        assert_eq!(key_path(text, &["values", "app", "level"]), (4, 5));
        assert_eq!(key_path(text, &["values", "logging", "nope"]), (5, 3));
    }

    #[test]
    fn missing_key_falls_back_to_item() {
        assert_eq!(field_key(TEXT, 1, "target_entity"), (6, 3));
    }
}
