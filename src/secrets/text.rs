//! A configuration file's text with its secrets hidden, found by the file's
//! structure rather than line patterns: every value under a secret key,
//! whatever form it takes (a plain, quoted, multi-line or block scalar, a flow
//! or block collection, an anchor another key aliases), the comments that
//! could hold one, and passwords in URLs. The lines stay where they were, so
//! a diff of two shown texts lines up with the files (docs/config-format.md
//! says what is shown).

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use super::{redact_block_line, redact_urls, Redaction, SecretRef, REDACTED};
use crate::yaml::outline::{outline, Node, NodeKind, Outline};

/// What a text's secrets are: the byte ranges of their values, the ranges
/// comments may hide them in, and the values themselves (to be hidden from
/// messages that quote them).
#[derive(Debug, Default)]
pub(super) struct Secrets {
    values: Vec<Range<usize>>,
    /// From a secret key to the end of its value: a comment there is hidden.
    zones: Vec<Range<usize>>,
    /// Every scalar, secret or not: a `#` inside one is not a comment.
    scalars: Vec<Range<usize>>,
    pub texts: BTreeSet<String>,
    unread_from: Option<usize>,
}

impl Redaction {
    /// The secrets of `text`, found by its structure.
    pub(super) fn secrets_of(&self, text: &str) -> Secrets {
        let outline = outline(text);
        let mut found = Secrets { unread_from: outline.unread_from, ..Secrets::default() };
        let anchors = anchored(&outline);
        let mut aliased: Vec<String> = Vec::new();
        for document in &outline.documents {
            self.visit(document, false, &mut found, &mut aliased);
        }
        // A secret key naming an anchor (`password: *common`) makes the
        // anchored node a secret wherever it is written.
        let mut done: BTreeSet<String> = BTreeSet::new();
        while let Some(name) = aliased.pop() {
            if !done.insert(name.clone()) {
                continue;
            }
            for node in anchors.get(name.as_str()).into_iter().flatten() {
                self.visit(node, true, &mut found, &mut aliased);
            }
        }
        found
    }

    fn visit(&self, node: &Node, secret: bool, found: &mut Secrets, aliased: &mut Vec<String>) {
        match &node.kind {
            NodeKind::Scalar(value) => {
                found.scalars.push(node.start..node.end);
                if secret && !value.is_empty() && SecretRef::parse(value).is_none() {
                    found.values.push(node.start..node.end);
                    found.texts.insert(value.clone());
                }
            }
            NodeKind::Alias(name) if secret => aliased.push(name.clone()),
            NodeKind::Alias(_) => {}
            NodeKind::Sequence(items) => items.iter().for_each(|item| self.visit(item, secret, found, aliased)),
            NodeKind::Mapping(pairs) => {
                for (key, value) in pairs {
                    // Keys are shown, even inside a secret.
                    self.visit(key, false, found, aliased);
                    let named = key.scalar().is_some_and(|k| self.is_secret_key(k));
                    if named {
                        found.zones.push(key.start..value.end.max(key.end));
                    }
                    self.visit(value, secret || named, found, aliased);
                }
            }
        }
    }

    /// Whether a comment's text could hold a secret: it names a secret key
    /// (a commented-out `# password: …`, say) or holds a URL with a user.
    fn comment_may_hold_a_secret(&self, comment: &str) -> bool {
        let words = comment.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'));
        words.filter(|w| !w.is_empty()).any(|w| self.is_secret_key(w)) || redact_urls(comment) != comment
    }

    /// `text` with its secrets hidden (see the module's doc).
    pub(super) fn shown_by_structure(&self, text: &str) -> String {
        let found = self.secrets_of(text);
        let parsed_to = found.unread_from.map_or(text.len(), |at| text[..at].rfind('\n').map_or(0, |n| n + 1));
        let mut cuts: Vec<(Range<usize>, Cut)> = found.values.iter().map(|r| (r.clone(), Cut::Value)).collect();
        for comment in comments(&text[..parsed_to], &found.scalars) {
            let hide = self.comment_may_hold_a_secret(&text[comment.clone()])
                || found.zones.iter().any(|z| z.start <= comment.start && comment.start < z.end);
            if hide {
                cuts.push((comment, Cut::Comment));
            }
        }
        cuts.sort_by_key(|(r, _)| (r.start, r.end));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (range, cut) in cuts {
            // A value the parser broke off in is hidden up to where the
            // unread lines begin, which are hidden whole below.
            let range = range.start..range.end.min(parsed_to);
            if range.start < at || range.start >= parsed_to {
                continue;
            }
            out.push_str(&text[at..range.start]);
            match cut {
                Cut::Value => out.push_str(&blank(&text[range.clone()])),
                Cut::Comment => out.push_str(&format!(" {REDACTED}")),
            }
            at = range.end;
        }
        out.push_str(&text[at..parsed_to]);
        // What the parser could not read: every value hidden, keys kept.
        for line in text[parsed_to..].split_inclusive('\n') {
            let (body, end) = line.strip_suffix('\n').map_or((line, ""), |b| (b, "\n"));
            let indent = body.len() - body.trim_start().len();
            match body.trim_start().starts_with('#') {
                true => out.push_str(&format!("{}# {REDACTED}", &body[..indent])),
                false => out.push_str(&redact_block_line(body, indent)),
            }
            out.push_str(end);
        }
        out.split_inclusive('\n').map(redact_urls).collect()
    }
}

/// What a cut hides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// A value: each of its lines becomes one `•••••`, indentation kept.
    Value,
    /// A comment's text after its `#`.
    Comment,
}

/// The nodes carrying each anchor.
fn anchored(outline: &Outline) -> HashMap<&str, Vec<&Node>> {
    fn walk<'n>(node: &'n Node, out: &mut HashMap<&'n str, Vec<&'n Node>>) {
        if let Some(name) = &node.anchor {
            out.entry(name.as_str()).or_default().push(node);
        }
        match &node.kind {
            NodeKind::Sequence(items) => items.iter().for_each(|i| walk(i, out)),
            NodeKind::Mapping(pairs) => pairs.iter().for_each(|(k, v)| {
                walk(k, out);
                walk(v, out);
            }),
            NodeKind::Scalar(_) | NodeKind::Alias(_) => {}
        }
    }
    let mut out = HashMap::new();
    outline.documents.iter().for_each(|d| walk(d, &mut out));
    out
}

/// The text of each comment (after its `#`, to the end of its line) in
/// `text`: a `#` at a line's start or after a space, outside every scalar.
fn comments(text: &str, scalars: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut scalars: Vec<&Range<usize>> = scalars.iter().collect();
    scalars.sort_by_key(|r| r.start);
    let inside = |at: usize| {
        let i = scalars.partition_point(|r| r.start <= at);
        i > 0 && at < scalars[i - 1].end
    };
    let mut out = Vec::new();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let mut previous = ' ';
        for (i, c) in body.char_indices() {
            if c == '#' && previous.is_whitespace() && !inside(line_start + i) {
                out.push(line_start + i + 1..line_start + body.len());
                break;
            }
            previous = c;
        }
        line_start += line.len();
    }
    out.retain(|r| r.start < r.end);
    out
}

/// `segment` with each of its lines' text replaced by one `•••••`, the
/// indentation of every line after the first kept.
fn blank(segment: &str) -> String {
    segment
        .split('\n')
        .enumerate()
        .map(|(i, line)| {
            let kept = if i == 0 { 0 } else { line.len() - line.trim_start().len() };
            match line.trim().is_empty() {
                true => line.to_string(),
                false => format!("{}{REDACTED}", &line[..kept]),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
