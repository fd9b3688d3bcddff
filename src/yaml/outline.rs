//! A document's nodes with where each one is in the text: what redacting a
//! secret by the file's structure needs (`secrets::Redaction`), whatever form
//! the value takes (a flow mapping, a flow sequence, a block or multi-line
//! scalar, an anchor used elsewhere). Aliases stay aliases: nothing is
//! expanded.
//!
//! Read with `libyaml-safer`, the libyaml serde_yaml loads with, so the
//! nodes are the ones the loader sees. Where the parser stops on an error,
//! the outline says so; what follows is unread.

use libyaml_safer::{EventData, MappingStyle, Parser, SequenceStyle};

/// Collections nested deeper than this are not read: the loader refuses
/// them (its recursion limit is the same), and the walks over an outline
/// recurse.
pub const MAX_DEPTH: usize = 128;

/// One node and the bytes of the text it spans (`start..end`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub start: usize,
    pub end: usize,
    pub anchor: Option<String>,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A scalar's value (quotes and escapes resolved).
    Scalar(String),
    /// `*name`.
    Alias(String),
    Sequence(Vec<Node>),
    /// Key and value, in the order written.
    Mapping(Vec<(Node, Node)>),
}

/// Every document of a text, and where the parser stopped if it failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outline {
    pub documents: Vec<Node>,
    /// The byte where the text stopped making sense to the parser, if it did:
    /// nodes after it are not in the outline.
    pub unread_from: Option<usize>,
}

/// A collection being read, and its children so far.
struct Open {
    start: usize,
    anchor: Option<String>,
    mapping: bool,
    /// `[…]` or `{…}`: it ends at its closing bracket.
    flow: bool,
    children: Vec<Node>,
}

/// The outline of `text`.
pub fn outline(text: &str) -> Outline {
    let mut input = text.as_bytes();
    let mut parser = Parser::new();
    parser.set_input_string(&mut input);
    let mut out = Outline::default();
    let mut open: Vec<Open> = Vec::new();
    let at = |index: u64| usize::try_from(index).unwrap_or(usize::MAX).min(text.len());
    // The end of the last node read whole: where an error leaves the text unread.
    let mut read_to = 0;
    for event in parser {
        let opens = |e: &EventData| matches!(e, EventData::SequenceStart { .. } | EventData::MappingStart { .. });
        let event = match event {
            Ok(event) if !(open.len() >= MAX_DEPTH && opens(&event.data)) => Some(event),
            // An error, or a collection too deep to read.
            _ => None,
        };
        let Some(event) = event else {
            out.unread_from = Some(read_to);
            // What was read stays in the outline, its collections cut short.
            while let Some(closed) = open.pop() {
                let node = closed.into_node(None);
                add(&mut open, &mut out, node);
            }
            return out;
        };
        let (start, end) = (at(event.start_mark.index), at(event.end_mark.index));
        let node = match event.data {
            EventData::Scalar { anchor, value, .. } => Node { start, end, anchor, kind: NodeKind::Scalar(value) },
            EventData::Alias { anchor } => Node { start, end, anchor: None, kind: NodeKind::Alias(anchor) },
            EventData::SequenceStart { anchor, style, .. } => {
                let flow = style == SequenceStyle::Flow;
                open.push(Open { start, anchor, mapping: false, flow, children: Vec::new() });
                continue;
            }
            EventData::MappingStart { anchor, style, .. } => {
                let flow = style == MappingStyle::Flow;
                open.push(Open { start, anchor, mapping: true, flow, children: Vec::new() });
                continue;
            }
            EventData::SequenceEnd | EventData::MappingEnd => match open.pop() {
                Some(closed) => closed.into_node(Some(end)),
                None => continue,
            },
            _ => continue,
        };
        read_to = node.end;
        add(&mut open, &mut out, node);
    }
    out
}

/// `node` into the collection being read, or the outline's documents.
fn add(open: &mut [Open], out: &mut Outline, node: Node) {
    match open.last_mut() {
        Some(parent) => parent.children.push(node),
        None => out.documents.push(node),
    }
}

impl Open {
    /// The collection as a node; `end` is where its end event ends (`None`
    /// when the text broke off inside it).
    fn into_node(self, end: Option<usize>) -> Node {
        // A flow collection ends at its closing bracket; a block collection
        // where its last child does (its end event sits where the next node
        // begins).
        let end = match (self.flow, end, self.children.last()) {
            (true, Some(end), _) => end,
            (_, _, Some(last)) => last.end,
            (_, _, None) => self.start,
        };
        let kind = match self.mapping {
            true => {
                let mut pairs = Vec::with_capacity(self.children.len() / 2);
                let mut children = self.children.into_iter();
                while let (Some(k), Some(v)) = (children.next(), children.next()) {
                    pairs.push((k, v));
                }
                NodeKind::Mapping(pairs)
            }
            false => NodeKind::Sequence(self.children),
        };
        Node { start: self.start, end, anchor: self.anchor, kind }
    }
}

impl Node {
    /// The node's own text.
    pub fn text<'t>(&self, text: &'t str) -> &'t str {
        text.get(self.start..self.end).unwrap_or("")
    }

    /// The scalar's value, if it is one.
    pub fn scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar(value) => Some(value),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(node: &Node) -> &[(Node, Node)] {
        match &node.kind {
            NodeKind::Mapping(pairs) => pairs,
            other => panic!("not a mapping: {other:?}"),
        }
    }

    #[test]
    fn each_node_spans_its_own_text() {
        let text = "a: plain\nb: {c: 'quoted', d: [1, 2]}\ne: |\n  block\n  lines\nf: &x two\n  lines\ng: *x\n";
        let outline = outline(text);
        assert_eq!(outline.unread_from, None);
        let top = pairs(&outline.documents[0]);
        let shown: Vec<(&str, &str)> = top.iter().map(|(k, v)| (k.text(text), v.text(text))).collect();
        assert_eq!(
            shown,
            [
                ("a", "plain"),
                ("b", "{c: 'quoted', d: [1, 2]}"),
                ("e", "|\n  block\n  lines\n"),
                ("f", "&x two\n  lines"),
                ("g", "*x"),
            ]
        );
        assert_eq!(top[3].1.anchor.as_deref(), Some("x"));
        assert_eq!(top[3].1.scalar(), Some("two lines"));
        assert_eq!(top[4].1.kind, NodeKind::Alias("x".into()));
        let inner = pairs(&top[1].1);
        assert_eq!(inner[0].1.text(text), "'quoted'");
        assert_eq!(inner[1].1.text(text), "[1, 2]");
    }

    #[test]
    fn a_block_collection_ends_with_its_last_child() {
        let text = "outer:\n  inner:\n    - one\n    - two\n  after: x\nlast: y\n";
        let outline = outline(text);
        let top = pairs(&outline.documents[0]);
        assert_eq!(top[0].1.text(text), "inner:\n    - one\n    - two\n  after: x");
        let inner = pairs(&top[0].1);
        assert_eq!(inner[0].1.text(text), "- one\n    - two");
    }

    #[test]
    fn nesting_past_the_limit_is_left_unread() {
        let text = format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
        let outline = outline(&text);
        assert_eq!(outline.unread_from, Some(1), "{:?}", outline.unread_from);
        assert_eq!(outline.documents.len(), 1);
    }

    #[test]
    fn where_the_parser_stops_is_said_and_what_it_read_stays() {
        let text = "a: 1\nb: [2, 3\nc: 4\n";
        let outline = outline(text);
        let from = outline.unread_from.expect("the flow sequence never closes");
        assert!(from > text.find('[').unwrap() && from < text.len(), "{from}");
        let top = pairs(&outline.documents[0]);
        assert_eq!(top[0].1.text(text), "1");
        assert_eq!(top[1].0.text(text), "b");
    }
}
