//! saphyr-parser's events turned into a flat tree of the file's documents, each node with the
//! position it was read at, and the byte span of the one-line scalars that can be edited.
//!
//! Nodes live in one arena and an alias is the index of the node its anchor names, so an
//! alias costs nothing (no "billion laughs" expansion) and dropping a deeply nested file does
//! not recurse.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle};

/// A node's index in [`Tree::nodes`].
pub(super) type NodeId = usize;

/// Where a node starts: 1-based line and column (in characters, as an editor counts), and the
/// character index saphyr-parser gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Position {
    pub line: usize,
    pub col: usize,
    pub char_index: usize,
}

impl Position {
    fn of(marker: &saphyr_parser::Marker) -> Position {
        Position {
            line: marker.line(),
            col: marker.col() + 1,
            char_index: marker.index(),
        }
    }
}

/// One scalar as the parser read it.
#[derive(Debug)]
pub(super) struct Scalar {
    pub value: String,
    pub style: ScalarStyle,
    /// Where its properties (`&anchor`, `!tag`) or, without them, its text start.
    pub start: Position,
    /// The character index where the scalar ends. Exact for plain scalars; after a quoted one,
    /// saphyr-parser's end also covers the spaces and comment that follow, which
    /// [`Tree::locate`] does not rely on.
    pub end_char: usize,
}

/// A node of the tree.
#[derive(Debug)]
pub(super) enum Node {
    Scalar(Scalar),
    Sequence {
        items: Vec<NodeId>,
        start: Position,
    },
    Mapping {
        pairs: Vec<(NodeId, NodeId)>,
        start: Position,
        /// A flow mapping's closing `}` (character index); `None` for a block mapping.
        flow_end: Option<usize>,
    },
}

/// A parse failure: saphyr-parser's message and where it happened.
#[derive(Debug)]
pub(super) struct ParseFailure {
    pub line: usize,
    pub col: usize,
    pub what: String,
}

/// The documents of one file.
#[derive(Debug, Default)]
pub(super) struct Tree {
    pub nodes: Vec<Node>,
    /// The root node of each document, in file order.
    pub documents: Vec<NodeId>,
    /// How many aliases name each anchored node.
    pub aliases: HashMap<NodeId, usize>,
    /// What look-ups may still cost, in mapping pairs visited: see [`WORK_BUDGET`].
    work: Cell<usize>,
}

/// A container being read.
enum Open {
    Sequence {
        anchor: usize,
        start: Position,
        items: Vec<NodeId>,
    },
    Mapping {
        anchor: usize,
        start: Position,
        pairs: Vec<(NodeId, NodeId)>,
        key: Option<NodeId>,
    },
}

/// How many merges (`<<`) one look-up follows at most, so that merges of merges of shared
/// anchors cannot make a look-up exponential.
const MERGE_BUDGET: usize = 256;

/// How many mapping pairs the look-ups of one file may visit in all. A file of a few megabytes
/// needs well under a million; many services merging one huge mapping could need billions.
const WORK_BUDGET: usize = 50_000_000;

impl Tree {
    /// Reads every document of `text`.
    pub fn parse(text: &str) -> Result<Tree, ParseFailure> {
        let mut tree = Tree {
            work: Cell::new(WORK_BUDGET),
            ..Tree::default()
        };
        let mut anchors: HashMap<usize, NodeId> = HashMap::new();
        let mut open: Vec<Open> = Vec::new();
        for event in Parser::new_from_str(text) {
            let (event, span) = event.map_err(|e| ParseFailure {
                line: e.marker().line(),
                col: e.marker().col() + 1,
                what: e.info().to_string(),
            })?;
            let start = Position::of(&span.start);
            let done = match event {
                Event::Scalar(value, style, anchor, _tag) => {
                    let id = tree.push(Node::Scalar(Scalar {
                        value: value.into_owned(),
                        style,
                        start,
                        end_char: span.end.index(),
                    }));
                    if anchor != 0 {
                        anchors.insert(anchor, id);
                    }
                    id
                }
                Event::Alias(anchor) => match anchors.get(&anchor) {
                    Some(&id) => {
                        *tree.aliases.entry(id).or_default() += 1;
                        id
                    }
                    // An alias of a container still open (`&a [*a]`): refused rather than a
                    // cycle in the tree.
                    None => {
                        return Err(ParseFailure {
                            line: start.line,
                            col: start.col,
                            what: "an alias to an anchor that is not complete here".to_string(),
                        })
                    }
                },
                Event::SequenceStart(anchor, _) => {
                    open.push(Open::Sequence {
                        anchor,
                        start,
                        items: Vec::new(),
                    });
                    continue;
                }
                Event::MappingStart(anchor, _) => {
                    open.push(Open::Mapping {
                        anchor,
                        start,
                        pairs: Vec::new(),
                        key: None,
                    });
                    continue;
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let (node, anchor) = match open.pop() {
                        Some(Open::Sequence {
                            anchor,
                            start,
                            items,
                        }) => (Node::Sequence { items, start }, anchor),
                        Some(Open::Mapping {
                            anchor,
                            start,
                            pairs,
                            ..
                        }) => {
                            // A block mapping ends with an empty span, a flow mapping on its `}`.
                            let flow_end = (span.end.index() > span.start.index())
                                .then_some(span.start.index());
                            (
                                Node::Mapping {
                                    pairs,
                                    start,
                                    flow_end,
                                },
                                anchor,
                            )
                        }
                        // saphyr-parser balances its events; nothing to close is nothing to do.
                        None => continue,
                    };
                    let id = tree.push(node);
                    if anchor != 0 {
                        anchors.insert(anchor, id);
                    }
                    id
                }
                Event::StreamStart
                | Event::StreamEnd
                | Event::DocumentStart(_)
                | Event::DocumentEnd
                | Event::Nothing => continue,
            };
            match open.last_mut() {
                Some(Open::Sequence { items, .. }) => items.push(done),
                Some(Open::Mapping { pairs, key, .. }) => match key.take() {
                    Some(k) => pairs.push((k, done)),
                    None => *key = Some(done),
                },
                None => tree.documents.push(done),
            }
        }
        Ok(tree)
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// The scalar `id` is, if it is one.
    pub fn scalar(&self, id: NodeId) -> Option<&Scalar> {
        match &self.nodes[id] {
            Node::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The text of the scalar `id`, if it is one.
    pub fn text(&self, id: NodeId) -> Option<&str> {
        self.scalar(id).map(|s| s.value.as_str())
    }

    /// Where node `id` starts.
    pub fn position(&self, id: NodeId) -> Position {
        match &self.nodes[id] {
            Node::Scalar(s) => s.start,
            Node::Sequence { start, .. } | Node::Mapping { start, .. } => *start,
        }
    }

    /// The items of sequence `id` (none when it is not a sequence).
    pub fn items(&self, id: NodeId) -> &[NodeId] {
        match &self.nodes[id] {
            Node::Sequence { items, .. } => items,
            _ => &[],
        }
    }

    /// The value of `key` in mapping `id`: its own pair first, then the mappings it merges
    /// (`<<: *base` or `<<: [*a, *b]`), as YAML's merge key means.
    pub fn get(&self, id: NodeId, key: &str) -> Option<NodeId> {
        let mut budget = MERGE_BUDGET;
        self.get_within(id, key, &mut budget)
    }

    fn get_within(&self, id: NodeId, key: &str, budget: &mut usize) -> Option<NodeId> {
        let Node::Mapping { pairs, .. } = &self.nodes[id] else {
            return None;
        };
        if !self.charge(pairs.len()) {
            return None;
        }
        if let Some(&(_, v)) = pairs.iter().find(|(k, _)| self.text(*k) == Some(key)) {
            return Some(v);
        }
        for merged in self.merged(id) {
            if *budget == 0 {
                return None;
            }
            *budget -= 1;
            if let Some(v) = self.get_within(merged, key, budget) {
                return Some(v);
            }
        }
        None
    }

    /// The mappings `id` merges with `<<`, in the order they take precedence.
    fn merged(&self, id: NodeId) -> Vec<NodeId> {
        let Node::Mapping { pairs, .. } = &self.nodes[id] else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if !self.charge(pairs.len()) {
            return out;
        }
        for &(k, v) in pairs {
            if self.text(k) != Some("<<") {
                continue;
            }
            match &self.nodes[v] {
                Node::Mapping { .. } => out.push(v),
                Node::Sequence { items, .. } => out.extend(
                    items
                        .iter()
                        .copied()
                        .filter(|&i| matches!(self.nodes[i], Node::Mapping { .. })),
                ),
                Node::Scalar(_) => {}
            }
        }
        out
    }

    /// The pairs of mapping `id` with a scalar key, its own first, then those its merges add
    /// (one level: a merged mapping's own merges are not listed).
    pub fn entries(&self, id: NodeId) -> Vec<(&str, NodeId)> {
        let Node::Mapping { pairs, .. } = &self.nodes[id] else {
            return Vec::new();
        };
        let mut out: Vec<(&str, NodeId)> = pairs
            .iter()
            .filter_map(|&(k, v)| Some((self.text(k)?, v)))
            .filter(|(k, _)| *k != "<<")
            .collect();
        let mut seen: HashSet<&str> = out.iter().map(|(k, _)| *k).collect();
        for merged in self.merged(id) {
            if let Node::Mapping { pairs, .. } = &self.nodes[merged] {
                if !self.charge(pairs.len()) {
                    break;
                }
                for &(k, v) in pairs {
                    if let Some(k) = self.text(k) {
                        if k != "<<" && seen.insert(k) {
                            out.push((k, v));
                        }
                    }
                }
            }
        }
        out
    }

    /// Spends `pairs` of the work budget; `false` (and nothing more found) once it is spent.
    fn charge(&self, pairs: usize) -> bool {
        let left = self.work.get();
        self.work.set(left.saturating_sub(pairs));
        left >= pairs
    }

    /// Whether look-ups stopped short because the work budget was spent.
    pub fn exhausted(&self) -> bool {
        self.work.get() == 0
    }
}

/// Byte offsets of character indices, found from a checkpoint every [`CharIndex::STRIDE`]
/// characters rather than a table of every character or a walk from the start each time.
pub(super) struct CharIndex<'t> {
    text: &'t str,
    checkpoints: Vec<usize>,
}

impl<'t> CharIndex<'t> {
    const STRIDE: usize = 256;

    pub fn new(text: &'t str) -> CharIndex<'t> {
        let checkpoints = if text.is_ascii() {
            Vec::new()
        } else {
            text.char_indices()
                .step_by(Self::STRIDE)
                .map(|(byte, _)| byte)
                .collect()
        };
        CharIndex { text, checkpoints }
    }

    /// The byte offset of character `index` (the text's length past its end).
    pub fn byte(&self, index: usize) -> usize {
        if self.checkpoints.is_empty() {
            return index.min(self.text.len());
        }
        let Some(&from) = self.checkpoints.get(index / Self::STRIDE) else {
            return self.text.len();
        };
        self.text[from..]
            .char_indices()
            .nth(index % Self::STRIDE)
            .map_or(self.text.len(), |(b, _)| from + b)
    }
}

/// The bytes of a scalar written on one line, exactly as the file has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Located {
    /// Byte range of the scalar's text, quotes included.
    pub start: usize,
    pub end: usize,
    pub style: Style,
}

/// How a located scalar is quoted, kept when it is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    Plain,
    Single,
    Double,
}

/// Finds the bytes of `scalar` in `text`, and checks that they read back as its value: a plain
/// or quoted scalar on one line, without escapes. Anything else (block scalars, folded lines,
/// escapes) is `None`, as rewriting it would need more than replacing its bytes.
pub(super) fn locate(text: &str, chars: &CharIndex<'_>, scalar: &Scalar) -> Option<Located> {
    let value = scalar.value.as_str();
    if value.contains(['\n', '\r']) {
        return None;
    }
    let (start, end, style) = match scalar.style {
        ScalarStyle::Plain => {
            let end = chars.byte(scalar.end_char);
            let start = end.checked_sub(value.len())?;
            (start, end, Style::Plain)
        }
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
            let (quote, style) = if scalar.style == ScalarStyle::SingleQuoted {
                ('\'', Style::Single)
            } else {
                ('"', Style::Double)
            };
            if value.contains(quote) || (style == Style::Double && value.contains('\\')) {
                return None;
            }
            // After `&anchor` or `!tag`, on the same line.
            let from = chars.byte(scalar.start.char_index);
            let rest = text.get(from..)?;
            let line = &rest[..rest.find(['\n', '\r']).unwrap_or(rest.len())];
            let start = from + line.find(quote)?;
            (start, start + value.len() + 2, style)
        }
        _ => return None,
    };
    let found = text.get(start..end)?;
    let inner = match style {
        Style::Plain => found,
        Style::Single | Style::Double => {
            found.strip_prefix(['\'', '"'])?.strip_suffix(['\'', '"'])?
        }
    };
    (inner == value).then_some(Located { start, end, style })
}
