//! How far a document's aliases expand it, counted before the document is
//! loaded: an alias (`*name`) stands for a copy of the node anchored
//! `&name`, and loading makes every copy. A few lines of nested aliases
//! ("billion laughs") expand to millions of values; the file-size limit does
//! not bound that, so the expansion has a budget of its own
//! (docs/security.md).
//!
//! The count reads the text with `libyaml-safer`, a port of the libyaml that
//! serde_yaml loads with, so it sees the nodes the loader will. A text it
//! cannot read is left to the loader, which reports the error.

use std::collections::HashMap;

use libyaml_safer::{EventData, Mark, Parser};

/// At most this many times the nodes (and scalar bytes) written in the file,
/// once aliases are expanded.
pub const EXPANSION_FACTOR: u64 = 10;
/// And never more than this many nodes when aliases add any.
pub const MAX_EXPANDED_NODES: u64 = 1_000_000;

/// What a node stands for: nodes (scalars, sequences, mappings) and the
/// bytes of its scalars.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Size {
    nodes: u64,
    bytes: u64,
}

impl Size {
    fn add(&mut self, other: Size) {
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }

    /// Whether `self`, the expansion of a text whose own size is `own`, is
    /// over the budget.
    fn over(self, own: Size) -> bool {
        let grown = self.nodes > own.nodes || self.bytes > own.bytes;
        grown
            && (self.nodes > own.nodes.saturating_mul(EXPANSION_FACTOR)
                || self.bytes > own.bytes.max(1024).saturating_mul(EXPANSION_FACTOR)
                || self.nodes > MAX_EXPANDED_NODES)
    }
}

/// An expansion over budget: where the alias that took it over is (1-based
/// line and column), and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverBudget {
    pub at: (usize, usize),
    pub message: String,
}

/// A collection still open while the events are read, and its size so far.
struct Open {
    anchor: Option<String>,
    size: Size,
}

/// Checks that `text`'s aliases do not expand it past its budget: at most
/// [`EXPANSION_FACTOR`] times its own nodes and its own scalar bytes (1 KiB
/// of them at least), and at most [`MAX_EXPANDED_NODES`] nodes.
pub fn check(text: &str) -> Result<(), OverBudget> {
    // Every alias starts with `*`: a text without one (most files) has
    // nothing to expand, and is not read twice.
    if !text.contains('*') {
        return Ok(());
    }
    let mut input = text.as_bytes();
    let mut parser = Parser::new();
    parser.set_input_string(&mut input);
    let (mut own, mut done) = (Size::default(), Size::default());
    let mut open: Vec<Open> = Vec::new();
    let mut anchors: HashMap<String, Size> = HashMap::new();
    // Each alias with the whole expansion once it is counted: the total only
    // grows, so the first alias past the budget is the one to name.
    let mut aliases: Vec<(Mark, String, Size)> = Vec::new();
    for event in parser {
        // Left to the loader, which says what is wrong and where.
        let Ok(event) = event else { return Ok(()) };
        let (size, anchor) = match event.data {
            EventData::Scalar { anchor, value, .. } => {
                let size = Size { nodes: 1, bytes: value.len() as u64 };
                own.add(size);
                (size, anchor)
            }
            EventData::SequenceStart { anchor, .. } | EventData::MappingStart { anchor, .. } => {
                own.nodes += 1;
                open.push(Open { anchor, size: Size { nodes: 1, bytes: 0 } });
                continue;
            }
            EventData::SequenceEnd | EventData::MappingEnd => match open.pop() {
                Some(closed) => (closed.size, closed.anchor),
                None => continue,
            },
            EventData::Alias { anchor } => {
                own.nodes += 1;
                // An anchor not defined (yet) is the loader's error to report.
                let size = anchors.get(&anchor).copied().unwrap_or(Size { nodes: 1, bytes: 0 });
                match open.last_mut() {
                    Some(parent) => parent.size.add(size),
                    None => done.add(size),
                }
                let mut total = done;
                open.iter().for_each(|o| total.add(o.size));
                aliases.push((event.start_mark, anchor, total));
                continue;
            }
            _ => continue,
        };
        if let Some(name) = anchor {
            anchors.insert(name, size);
        }
        match open.last_mut() {
            Some(parent) => parent.size.add(size),
            None => done.add(size),
        }
    }
    let Some((mark, name, _)) = aliases.into_iter().find(|(_, _, total)| total.over(own)) else { return Ok(()) };
    let (line, column) = (mark.line as usize + 1, mark.column as usize + 1);
    Err(OverBudget {
        at: (line, column),
        message: format!(
            "the alias `*{name}` takes the file past what its aliases may expand it to: at most {EXPANSION_FACTOR} \
             times the {} values and {} bytes of text written in it, and at most {MAX_EXPANDED_NODES} values",
            own.nodes, own.bytes
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `levels` of anchors, each a list of `width` aliases of the one before.
    fn laughs(levels: usize, width: usize) -> String {
        let mut text = String::from("a0: &a0 [lol]\n");
        for l in 1..=levels {
            let items = vec![format!("*a{}", l - 1); width].join(", ");
            text.push_str(&format!("a{l}: &a{l} [{items}]\n"));
        }
        text
    }

    #[test]
    fn a_few_aliases_are_fine() {
        let text = "base: &base {a: 1, b: 2}\none: *base\ntwo: *base\nthree: {<<: *base, c: 3}\n";
        assert_eq!(check(text), Ok(()));
        assert_eq!(check(&laughs(2, 3)), Ok(()), "{}", laughs(2, 3));
    }

    #[test]
    fn nested_aliases_are_refused_at_the_alias_that_goes_over() {
        // 6 levels of 10: a million values from 7 lines.
        let text = laughs(6, 10);
        let over = check(&text).unwrap_err();
        assert!(over.message.contains("the alias `*a"), "{}", over.message);
        // The first alias past ten times the file's own values is on the
        // third level's line.
        assert_eq!(over.at.0, 4, "{over:?}\n{text}");
        let line = text.lines().nth(over.at.0 - 1).unwrap();
        assert_eq!(&line[over.at.1 - 1..over.at.1 + 2], "*a2", "{over:?} in {line}");
    }

    #[test]
    fn one_long_scalar_repeated_is_counted_by_its_bytes() {
        let long = "x".repeat(100_000);
        let text = format!("big: &big {long}\ncopies: [{}]\n", vec!["*big"; 20].join(", "));
        let over = check(&text).unwrap_err();
        assert!(over.message.contains("*big"), "{}", over.message);
        let fine = format!("big: &big {long}\ncopies: [{}]\n", ["*big"; 5].join(", "));
        assert_eq!(check(&fine), Ok(()));
    }

    #[test]
    fn a_big_file_without_aliases_is_not_counted_against_the_cap() {
        let text: String = (0..200_000).map(|i| format!("- {i}\n")).collect();
        assert_eq!(check(&text), Ok(()));
    }

    #[test]
    fn what_the_parser_cannot_read_is_left_to_the_loader() {
        assert_eq!(check("a: [1, 2\n"), Ok(()));
        assert_eq!(check("a: *nowhere\n"), Ok(()));
    }
}
