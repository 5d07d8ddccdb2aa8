//! Reading the images of compose files, Kubernetes workloads and kustomizations.

use std::collections::{BTreeMap, HashMap};

use super::edit::{Insertion, KustomizeSite, SiteKind, Target};
use super::tree::{locate, CharIndex, Node, NodeId, Position, Tree};
use super::{FoundImage, RowError, ScanError, Site, MAX_FILE_BYTES};
use crate::image_ref::ImageRef;

/// Reads every image a file names. `path` is repository-relative, used in rows and errors.
///
/// `Err` is the whole file's error (not YAML, too large): none of its rows can be read. Inside
/// `Ok`, each row is its image or its own error (an image value that is not a string, a
/// reference [`ImageRef`] refuses, a value that cannot be pinned), in file order, so one bad
/// image does not hide the others.
pub fn scan(path: &str, text: &str) -> Result<Vec<Result<FoundImage, RowError>>, ScanError> {
    // What is wrong with the file as a whole, shown at its start.
    let file_error = |what: String| ScanError {
        path: path.to_string(),
        line: 1,
        col: 1,
        what,
    };
    if text.len() > MAX_FILE_BYTES {
        return Err(file_error(format!(
            "the file has {} bytes, more than the {MAX_FILE_BYTES} a manifest is read up to",
            text.len()
        )));
    }
    let tree = Tree::parse(text).map_err(|f| ScanError {
        path: path.to_string(),
        line: f.line,
        col: f.col,
        what: f.what,
    })?;
    let file_name = path.rsplit('/').next().unwrap_or(path);
    let kustomization_file = matches!(
        file_name,
        "kustomization.yaml" | "kustomization.yml" | "Kustomization"
    );
    let mut scanner = Scanner {
        path,
        text,
        chars: CharIndex::new(text),
        tree: &tree,
        rows: Vec::new(),
        edited: Vec::new(),
    };
    for &document in &tree.documents {
        if !matches!(tree.nodes[document], Node::Mapping { .. }) {
            continue;
        }
        let kind = tree.get(document, "kind").and_then(|k| tree.text(k));
        match kind {
            Some("Kustomization") => {
                let api_version = tree
                    .get(document, "apiVersion")
                    .and_then(|v| tree.text(v))
                    .unwrap_or("");
                // Flux's Kustomization takes the same `images` list under its spec.
                let owner = if api_version.starts_with("kustomize.toolkit.fluxcd.io/") {
                    tree.get(document, "spec")
                } else {
                    Some(document)
                };
                if let Some(owner) = owner {
                    scanner.kustomization(owner);
                }
            }
            None if kustomization_file => scanner.kustomization(document),
            Some(
                kind @ ("Pod" | "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job"
                | "CronJob"),
            ) => scanner.workload(document, kind),
            None => scanner.compose(document),
            Some(_) => {}
        }
    }
    if tree.exhausted() {
        return Err(file_error(
            "the file's merge keys (<<) make it too costly to read".to_string(),
        ));
    }
    scanner.refuse_shared_anchors();
    Ok(scanner.rows)
}

struct Scanner<'a> {
    path: &'a str,
    text: &'a str,
    chars: CharIndex<'a>,
    tree: &'a Tree,
    rows: Vec<Result<FoundImage, RowError>>,
    /// The scalars each found image's pin rewrites: (index in `rows`, node).
    edited: Vec<(usize, NodeId)>,
}

impl Scanner<'_> {
    fn error(&self, row: &str, at: Position, what: impl Into<String>) -> RowError {
        RowError {
            row: row.to_string(),
            error: ScanError {
                path: self.path.to_string(),
                line: at.line,
                col: at.col,
                what: what.into(),
            },
        }
    }

    /// Turns into errors the rows whose pin would rewrite an anchored scalar that an alias
    /// also uses where no found image is (a container's name, a label): pinning the image
    /// would change that too.
    fn refuse_shared_anchors(&mut self) {
        let mut rows_per_node: HashMap<NodeId, usize> = HashMap::new();
        for &(_, node) in &self.edited {
            *rows_per_node.entry(node).or_default() += 1;
        }
        for &(row, node) in &self.edited {
            let aliases = self.tree.aliases.get(&node).copied().unwrap_or(0);
            if aliases == 0 || rows_per_node[&node] > aliases {
                continue;
            }
            if let Ok(image) = &self.rows[row] {
                let error = self.error(&image.row, self.tree.position(node), SHARED_ANCHOR);
                self.rows[row] = Err(error);
            }
        }
    }

    /// `services.*.image` of a compose document.
    fn compose(&mut self, document: NodeId) {
        let tree = self.tree;
        let Some(services) = tree.get(document, "services") else {
            return;
        };
        for (name, service) in tree.entries(services) {
            if !matches!(tree.nodes[service], Node::Mapping { .. })
                || tree.get(service, "build").is_some()
            {
                continue;
            }
            let Some(image) = tree.get(service, "image") else {
                continue;
            };
            let labels = tree
                .get(service, "labels")
                .map(|l| self.labels(l))
                .unwrap_or_default();
            let row = format!("{}#{name}", self.path);
            self.image(row, image, labels);
        }
    }

    /// The containers and init containers of a workload's pod spec.
    fn workload(&mut self, document: NodeId, kind: &str) {
        let tree = self.tree;
        let metadata = tree.get(document, "metadata");
        let name = metadata
            .and_then(|m| tree.get(m, "name").or_else(|| tree.get(m, "generateName")))
            .and_then(|n| tree.text(n))
            .unwrap_or("");
        let labels = metadata
            .and_then(|m| tree.get(m, "annotations"))
            .map(|a| self.labels(a))
            .unwrap_or_default();
        let path: &[&str] = match kind {
            "Pod" => &["spec"],
            "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
            _ => &["spec", "template", "spec"],
        };
        let Some(pod_spec) = path
            .iter()
            .try_fold(document, |node, key| tree.get(node, key))
        else {
            return;
        };
        for list in ["containers", "initContainers"] {
            let Some(containers) = tree.get(pod_spec, list) else {
                continue;
            };
            for (index, &container) in tree.items(containers).iter().enumerate() {
                let Some(image) = tree.get(container, "image") else {
                    continue;
                };
                let container_name = tree
                    .get(container, "name")
                    .and_then(|n| tree.text(n))
                    .map_or_else(|| index.to_string(), str::to_string);
                let row = format!("{}#{kind}/{name}/{container_name}", self.path);
                self.image(row, image, labels.clone());
            }
        }
    }

    /// The `tidewatch.*` entries of a label mapping or a `key=value` list.
    fn labels(&self, node: NodeId) -> BTreeMap<String, String> {
        let tree = self.tree;
        let pairs: Vec<(String, String)> = match &tree.nodes[node] {
            Node::Mapping { .. } => tree
                .entries(node)
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_string(), tree.text(v)?.to_string())))
                .collect(),
            Node::Sequence { items, .. } => items
                .iter()
                .filter_map(|&i| tree.text(i))
                .map(|entry| match entry.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (entry.to_string(), String::new()),
                })
                .collect(),
            Node::Scalar(_) => Vec::new(),
        };
        pairs
            .into_iter()
            .filter(|(k, _)| k.starts_with("tidewatch."))
            .collect()
    }

    /// One image value: a row, its error, or nothing when it is interpolated.
    fn image(&mut self, row: String, node: NodeId, labels: BTreeMap<String, String>) {
        let at = self.tree.position(node);
        let Some(scalar) = self.tree.scalar(node).filter(|s| !is_null(s)) else {
            let error = self.error(&row, at, "the image is not a string");
            self.rows.push(Err(error));
            return;
        };
        let reference = scalar.value.clone();
        if reference.contains('$') {
            return;
        }
        if let Err(e) = ImageRef::parse(&reference) {
            let error = self.error(&row, at, e.to_string());
            self.rows.push(Err(error));
            return;
        }
        let Some(target) = self.target(node) else {
            let error = self.error(&row, at, NOT_ONE_LINE);
            self.rows.push(Err(error));
            return;
        };
        self.edited.push((self.rows.len(), node));
        self.rows.push(Ok(FoundImage {
            row,
            reference,
            labels,
            line: at.line,
            col: at.col,
            site: Site(SiteKind::Reference(target)),
        }));
    }

    /// The bytes of the one-line scalar `node`, if it is one.
    fn target(&self, node: NodeId) -> Option<Target> {
        let located = locate(self.text, &self.chars, self.tree.scalar(node)?)?;
        Some(Target {
            raw: self.text[located.start..located.end].to_string(),
            start: located.start,
            style: located.style,
        })
    }

    /// The `images:` entries of a kustomization (or of a Flux Kustomization's spec).
    fn kustomization(&mut self, owner: NodeId) {
        let Some(images) = self.tree.get(owner, "images") else {
            return;
        };
        for &entry in self.tree.items(images) {
            if let Some(row) = self.kustomization_entry(entry).transpose() {
                if row.is_ok() {
                    for key in ["newTag", "digest"] {
                        if let Some(node) = self.tree.get(entry, key) {
                            self.edited.push((self.rows.len(), node));
                        }
                    }
                }
                self.rows.push(row);
            }
        }
    }

    /// One `images:` entry; `None` when it has no name, is interpolated, or only renames.
    fn kustomization_entry(&self, entry: NodeId) -> Result<Option<FoundImage>, RowError> {
        let tree = self.tree;
        let at = tree.position(entry);
        let Some(name) = tree.get(entry, "name").and_then(|n| tree.text(n)) else {
            return Ok(None);
        };
        let row = format!("{}#images/{name}", self.path);
        // newName, newTag and digest: each absent, or a string scalar.
        let mut fields = [None; 3];
        for (field, key) in fields.iter_mut().zip(["newName", "newTag", "digest"]) {
            let Some(node) = tree.get(entry, key) else {
                continue;
            };
            match tree.scalar(node).filter(|s| !is_null(s)) {
                Some(s) => *field = Some((node, s.value.as_str())),
                None => {
                    let what = format!("{key} is not a string");
                    return Err(self.error(&row, tree.position(node), what));
                }
            }
        }
        let [new_name, new_tag, digest] = fields;
        if (new_tag.is_none() && digest.is_none())
            || fields.iter().flatten().any(|(_, v)| v.contains('$'))
        {
            return Ok(None);
        }
        let image_name = new_name.map_or(name, |(_, v)| v);
        let mut reference = image_name.to_string();
        if let Some((_, tag)) = new_tag {
            reference.push(':');
            reference.push_str(tag);
        }
        if let Some((_, digest)) = digest {
            reference.push('@');
            reference.push_str(digest);
        }
        if let Err(e) = ImageRef::parse(&reference) {
            return Err(self.error(&row, at, e.to_string()));
        }
        let target = |(node, _): (NodeId, &str)| {
            self.target(node)
                .ok_or_else(|| self.error(&row, tree.position(node), NOT_ONE_LINE))
        };
        let new_tag = new_tag
            .map(|field| Ok::<_, RowError>((target(field)?, field.1.to_string())))
            .transpose()?;
        let digest = digest.map(target).transpose()?;
        let site = KustomizeSite {
            name: image_name.to_string(),
            new_tag,
            digest,
            insertion: self.insertion(entry),
        };
        Ok(Some(FoundImage {
            row,
            reference,
            labels: BTreeMap::new(),
            line: at.line,
            col: at.col,
            site: Site(SiteKind::Kustomize(site)),
        }))
    }

    /// Where a kustomization entry takes a new key: a line after its last value (a block
    /// mapping), or `, key: value` before its `}` (a flow mapping).
    fn insertion(&self, entry: NodeId) -> Option<Insertion> {
        let tree = self.tree;
        let Node::Mapping {
            pairs, flow_end, ..
        } = &tree.nodes[entry]
        else {
            return None;
        };
        let &(first_key, _) = pairs.first()?;
        let &(_, last_value) = pairs.last()?;
        // An alias names a node written earlier, elsewhere: no place to add a line after. A
        // null has no text of its own to follow, and a complex key (`? ...`) no line of its own.
        if tree.position(last_value).char_index <= tree.position(first_key).char_index
            || tree.scalar(last_value).is_none_or(is_null)
            || pairs.iter().any(|&(k, _)| tree.scalar(k).is_none())
        {
            return None;
        }
        let last = self.target(last_value)?;
        let last_end = last.start + last.raw.len();
        if let Some(brace) = flow_end {
            let at = self.chars.byte(*brace);
            if self.text.get(at..at + 1) != Some("}") {
                return None;
            }
            return Some(Insertion::Flow {
                check_from: last.start,
                check: last.raw,
                at: last_end,
            });
        }
        // The entry's keys stand at its first key's column (`- name:` or `  name:`).
        let key_position = tree.position(first_key);
        let indent = " ".repeat(key_position.col - 1);
        let rest = &self.text[last_end..];
        let (at, eol, lead) = match line_break(rest) {
            Some((i, eol)) => (last_end + i + eol.len(), eol, false),
            None => {
                let eol = line_break(self.text).map_or("\n", |(_, eol)| eol);
                (self.text.len(), eol, true)
            }
        };
        Some(Insertion::Block {
            check_from: last.start,
            check: self.text[last.start..at].to_string(),
            at,
            indent,
            eol,
            lead,
        })
    }
}

/// The first line break of `text` (YAML's: `\r\n`, `\n` or a lone `\r`): where, and which.
fn line_break(text: &str) -> Option<(usize, &'static str)> {
    let i = text.find(['\n', '\r'])?;
    let eol = match &text[i..] {
        t if t.starts_with("\r\n") => "\r\n",
        t if t.starts_with('\r') => "\r",
        _ => "\n",
    };
    Some((i, eol))
}

const SHARED_ANCHOR: &str = "the value cannot be pinned: its anchor is also used for \
something other than an image, which the pin would change too";

const NOT_ONE_LINE: &str = "the value cannot be pinned: write it on one line, plain or quoted, \
without escapes";

/// YAML's null: an empty plain value, `~` or `null`.
fn is_null(scalar: &super::tree::Scalar) -> bool {
    scalar.style == saphyr_parser::ScalarStyle::Plain
        && matches!(scalar.value.as_str(), "" | "~" | "null" | "Null" | "NULL")
}
