//! Line diff of two YAML texts, with the changed words inside changed lines marked.

use serde::{Deserialize, Serialize};
use similar::{ChangeTag, TextDiff};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineTag {
    Same,
    Added,
    Removed,
}

/// One line of a unified diff, split into segments; `emphasised` segments are the
/// words that changed within the line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffLine {
    pub tag: LineTag,
    pub old_line: Option<usize>,
    pub new_line: Option<usize>,
    pub segments: Vec<(bool, String)>,
}

/// Unified diff with three lines of context.
pub fn text_diff(old: &str, new: &str) -> Vec<DiffLine> {
    let diff = TextDiff::from_lines(old, new);
    let mut out = Vec::new();
    for group in diff.grouped_ops(3) {
        for op in group {
            for change in diff.iter_inline_changes(&op) {
                let tag = match change.tag() {
                    ChangeTag::Equal => LineTag::Same,
                    ChangeTag::Insert => LineTag::Added,
                    ChangeTag::Delete => LineTag::Removed,
                };
                let segments = change
                    .iter_strings_lossy()
                    .map(|(emph, s)| (emph, s.trim_end_matches('\n').to_string()))
                    .filter(|(_, s)| !s.is_empty())
                    .collect();
                out.push(DiffLine {
                    tag,
                    old_line: change.old_index().map(|i| i + 1),
                    new_line: change.new_index().map(|i| i + 1),
                    segments,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_changed_words() {
        let d = text_diff("a: 1\nb: text\n", "a: 1\nb: long_text\n");
        let added = d.iter().find(|l| l.tag == LineTag::Added).unwrap();
        assert!(added.segments.iter().any(|(e, s)| *e && s.contains("long_text")), "{added:?}");
        assert_eq!(added.new_line, Some(2));
    }

    #[test]
    fn equal_texts_have_no_diff() {
        assert!(text_diff("a\n", "a\n").is_empty());
    }
}
