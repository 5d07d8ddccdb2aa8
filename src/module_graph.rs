//! Keeps the crate's imports pointing one way.
//!
//! Value types sit in leaf modules, the planning core (`plan`) reads those, the adapters
//! (`engine`, `registry`, `state`, `notify`, `api`) read the core, and `cycle`, `commands` and
//! `daemon` put them together. An import loop between top-level modules, or between the parts of
//! `plan`, means two layers have grown into one, so these tests read the sources and fail naming
//! the loop and one `file:line` for each import in it.
//!
//! The reading is lexical, not a compiler's: it follows `crate::`, `super::` and `self::` paths
//! outside comments, string and character literals and `#[cfg(test)]` items. That is how this
//! crate names other modules; a bare path through a child module (`detect::x` written in
//! `plan/mod.rs`) is not seen.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

/// One file of the library, read.
struct Source {
    /// The file relative to the crate, for messages: `src/engine/ops.rs`.
    shown: String,
    /// The module the file defines: `["engine", "ops"]`; empty for `lib.rs`.
    module: Vec<String>,
    /// Absolute paths the file names, each segment with the line it is written on.
    references: Vec<Vec<(String, usize)>>,
    /// Children declared `#[cfg(test)] mod x;`, whose files are test code.
    test_children: Vec<String>,
}

/// An import between two nodes (`from`, `to`) and the first place it is written.
type Edges = BTreeMap<(String, String), String>;

/// Reads every `.rs` file under `src`, `main.rs` (another crate) aside.
fn read_tree(src: &Path) -> Vec<(String, String)> {
    fn walk(dir: &Path, src: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|entry| entry.expect("a directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, src, out);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path.strip_prefix(src).expect("under src");
                if relative == Path::new("main.rs") {
                    continue;
                }
                let text = fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                let relative = relative.to_string_lossy().replace('\\', "/");
                out.push((relative, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(src, src, &mut out);
    out
}

/// The sources of the library proper: files declared by `#[cfg(test)] mod x;`, and everything
/// under them, are left out.
fn sources(files: &[(String, String)]) -> Vec<Source> {
    let all: Vec<Source> = files.iter().map(|(path, text)| read(path, text)).collect();
    let test_modules: Vec<Vec<String>> = all
        .iter()
        .flat_map(|source| {
            source.test_children.iter().map(|child| {
                let mut module = source.module.clone();
                module.push(child.clone());
                module
            })
        })
        .collect();
    all.into_iter()
        .filter(|source| !test_modules.iter().any(|m| source.module.starts_with(m)))
        .collect()
}

fn read(path: &str, text: &str) -> Source {
    let mut module: Vec<String> = path
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
        module.pop();
    }
    let mut code = blank_comments_and_literals(text);
    let test_children = blank_test_items(&mut code);
    let references = references(&code, &module);
    Source {
        shown: format!("src/{path}"),
        module,
        references,
        test_children,
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn blank(code: &mut [char], from: usize, to: usize) {
    let to = to.min(code.len());
    for c in &mut code[from..to] {
        if *c != '\n' {
            *c = ' ';
        }
    }
}

/// The text with comments and string and character literals turned to spaces, newlines kept so
/// that lines still count.
fn blank_comments_and_literals(text: &str) -> Vec<char> {
    let src: Vec<char> = text.chars().collect();
    let mut out = src.clone();
    let at = |i: usize| src.get(i).copied();
    let mut i = 0;
    while i < src.len() {
        let starts_word = i == 0 || !is_ident(src[i - 1]);
        let end = match (src[i], at(i + 1)) {
            ('/', Some('/')) => (i..src.len())
                .find(|&j| src[j] == '\n')
                .unwrap_or(src.len()),
            ('/', Some('*')) => {
                let (mut j, mut depth) = (i + 2, 1);
                while j < src.len() && depth > 0 {
                    match (src[j], at(j + 1)) {
                        ('/', Some('*')) => (depth, j) = (depth + 1, j + 2),
                        ('*', Some('/')) => (depth, j) = (depth - 1, j + 2),
                        _ => j += 1,
                    }
                }
                j
            }
            ('"', _) => {
                let mut j = i + 1;
                while j < src.len() && src[j] != '"' {
                    j += if src[j] == '\\' { 2 } else { 1 };
                }
                j + 1
            }
            // r"..", r#".."#, br".."
            ('r', _)
                if starts_word
                    || (i >= 1 && src[i - 1] == 'b' && (i < 2 || !is_ident(src[i - 2]))) =>
            {
                let hashes = (i + 1..src.len()).take_while(|&j| src[j] == '#').count();
                if at(i + 1 + hashes) != Some('"') {
                    i += 1;
                    continue;
                }
                let mut j = i + 2 + hashes;
                while j < src.len()
                    && !(src[j] == '"' && (1..=hashes).all(|k| at(j + k) == Some('#')))
                {
                    j += 1;
                }
                j + 1 + hashes
            }
            ('\'', Some('\\')) => (i + 3..src.len())
                .find(|&j| src[j] == '\'')
                .map_or(src.len(), |j| j + 1),
            ('\'', _) if at(i + 2) == Some('\'') => i + 3,
            // a lifetime, or any other character
            _ => {
                i += 1;
                continue;
            }
        };
        blank(&mut out, i, end);
        i = end;
    }
    out
}

fn skip_ws(code: &[char], mut i: usize) -> usize {
    while i < code.len() && code[i].is_whitespace() {
        i += 1;
    }
    i
}

/// The attribute starting at `i` (`#[...]`): its text without whitespace, and where it ends.
fn attribute_at(code: &[char], i: usize) -> Option<(String, usize)> {
    if code.get(i) != Some(&'#') {
        return None;
    }
    let open = skip_ws(code, i + 1);
    if code.get(open) != Some(&'[') {
        return None;
    }
    let mut depth = 0;
    for (j, &c) in code.iter().enumerate().skip(open) {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    let text = code[open + 1..j]
                        .iter()
                        .filter(|c| !c.is_whitespace())
                        .collect();
                    return Some((text, j + 1));
                }
            }
            _ => {}
        }
    }
    None
}

/// Where the item starting at `i` ends: after its `;`, or after the block its first `{` opens
/// (a `use` item's braces are a group, not a block).
fn item_end(code: &[char], i: usize) -> usize {
    let head_end = (i..code.len())
        .find(|&j| matches!(code[j], '{' | ';'))
        .unwrap_or(code.len());
    let head: String = code[i..head_end].iter().collect();
    let is_use = head.split(|c: char| !is_ident(c)).any(|word| word == "use");
    let mut depth = 0usize;
    for (j, &c) in code.iter().enumerate().skip(i) {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 && !is_use {
                    return j + 1;
                }
            }
            ';' if depth == 0 => return j + 1,
            _ => {}
        }
    }
    code.len()
}

/// Blanks every `#[cfg(test)]` item and returns the names of the child modules declared that way
/// (`#[cfg(test)] mod tests;`), whose files are test code too.
fn blank_test_items(code: &mut [char]) -> Vec<String> {
    let mut children = Vec::new();
    let mut i = 0;
    while let Some(start) = (i..code.len()).find(|&j| code[j] == '#') {
        let Some((attribute, after)) = attribute_at(code, start) else {
            i = start + 1;
            continue;
        };
        if attribute != "cfg(test)" {
            i = after;
            continue;
        }
        let mut item = skip_ws(code, after);
        while let Some((_, after)) = attribute_at(code, item) {
            item = skip_ws(code, after);
        }
        let end = item_end(code, item);
        let text: String = code[item..end].iter().collect();
        let words: Vec<&str> = text
            .split(|c: char| !is_ident(c))
            .filter(|w| !w.is_empty())
            .collect();
        if text.ends_with(';') {
            if let [.., "mod", name] = words.as_slice() {
                children.push((*name).to_string());
            }
        }
        blank(code, start, end);
        i = end;
    }
    children
}

/// Every `crate::`, `super::` and `self::` path in `code`, made absolute from `module`, with
/// `use` groups (`crate::{a::X, b::{Y, Z}}`) spread into one path per leaf.
fn references(code: &[char], module: &[String]) -> Vec<Vec<(String, usize)>> {
    let mut lines = Vec::with_capacity(code.len());
    let mut line = 1;
    for &c in code {
        lines.push(line);
        if c == '\n' {
            line += 1;
        }
    }
    let word_at = |i: usize| -> (String, usize) {
        let end = (i..code.len())
            .find(|&j| !is_ident(code[j]))
            .unwrap_or(code.len());
        (code[i..end].iter().collect(), end)
    };
    let path_sep = |i: usize| -> Option<usize> {
        let i = skip_ws(code, i);
        (code.get(i) == Some(&':') && code.get(i + 1) == Some(&':')).then(|| skip_ws(code, i + 2))
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < code.len() {
        if !is_ident(code[i]) || (i > 0 && is_ident(code[i - 1])) {
            i += 1;
            continue;
        }
        let (word, end) = word_at(i);
        let mut base: Vec<(String, usize)> = match word.as_str() {
            "crate" => Vec::new(),
            "self" => module.iter().map(|m| (m.clone(), lines[i])).collect(),
            "super" => module[..module.len().saturating_sub(1)]
                .iter()
                .map(|m| (m.clone(), lines[i]))
                .collect(),
            _ => {
                i = end;
                continue;
            }
        };
        let Some(mut next) = path_sep(end) else {
            i = end;
            continue;
        };
        if word == "super" {
            loop {
                let (word, after) = word_at(next);
                if word != "super" {
                    break;
                }
                base.pop();
                match path_sep(after) {
                    Some(n) => next = n,
                    None => break,
                }
            }
        }
        i = tree(code, &lines, next, base, &mut out);
    }
    out
}

/// Reads the path or `use` tree at `i` below `prefix` into `out`; returns where it ends.
fn tree(
    code: &[char],
    lines: &[usize],
    i: usize,
    prefix: Vec<(String, usize)>,
    out: &mut Vec<Vec<(String, usize)>>,
) -> usize {
    let i = skip_ws(code, i);
    match code.get(i) {
        Some('{') => {
            let mut j = i + 1;
            loop {
                j = skip_ws(code, j);
                match code.get(j) {
                    None => return j,
                    Some('}') => return j + 1,
                    Some(',') => j += 1,
                    Some(_) => {
                        let after = tree(code, lines, j, prefix.clone(), out);
                        // Something this reader does not follow: leave the group.
                        if after == j {
                            return j;
                        }
                        j = after;
                    }
                }
            }
        }
        Some(&c) if is_ident(c) => {
            let end = (i..code.len())
                .find(|&j| !is_ident(code[j]))
                .unwrap_or(code.len());
            let word: String = code[i..end].iter().collect();
            if word == "self" {
                out.push(prefix);
                return end;
            }
            let mut path = prefix;
            path.push((word, lines[i]));
            let after = skip_ws(code, end);
            if code.get(after) == Some(&':') && code.get(after + 1) == Some(&':') {
                let next = skip_ws(code, after + 2);
                if code
                    .get(next)
                    .is_some_and(|&c| is_ident(c) || c == '{' || c == '*')
                {
                    return tree(code, lines, next, path, out);
                }
            }
            out.push(path);
            end
        }
        Some('*') => {
            out.push(prefix);
            i + 1
        }
        _ => {
            out.push(prefix);
            i
        }
    }
}

/// The imports between the modules one level below `scope` (`[]`: the top-level modules;
/// `["plan"]`: `plan::detect`, `plan::order`, ... and `plan` itself for its own items).
fn edges(sources: &[Source], scope: &[&str]) -> (BTreeSet<String>, Edges) {
    let below: BTreeSet<&str> = sources
        .iter()
        .filter(|s| s.module.len() > scope.len() && s.module.iter().zip(scope).all(|(m, s)| m == s))
        .map(|s| s.module[scope.len()].as_str())
        .collect();
    let node = |path: &[&str]| -> Option<(String, usize)> {
        if path.len() < scope.len() || path[..scope.len()] != *scope {
            return None;
        }
        match path.get(scope.len()) {
            Some(child) if below.contains(child) => {
                let mut name = scope.to_vec();
                name.push(child);
                Some((name.join("::"), scope.len()))
            }
            _ if scope.is_empty() => None,
            _ => Some((scope.join("::"), scope.len().saturating_sub(1))),
        }
    };
    let mut nodes = BTreeSet::new();
    let mut edges = Edges::new();
    for source in sources {
        let module: Vec<&str> = source.module.iter().map(String::as_str).collect();
        let Some((from, _)) = node(&module) else {
            continue;
        };
        nodes.insert(from.clone());
        for reference in &source.references {
            let path: Vec<&str> = reference.iter().map(|(s, _)| s.as_str()).collect();
            let Some((to, segment)) = node(&path) else {
                continue;
            };
            if to == from {
                continue;
            }
            let line = reference
                .get(segment)
                .or(reference.last())
                .map_or(0, |(_, l)| *l);
            nodes.insert(to.clone());
            edges
                .entry((from.clone(), to))
                .or_insert_with(|| format!("{}:{line}", source.shown));
        }
    }
    (nodes, edges)
}

/// The groups of two or more nodes that reach each other.
fn loops(nodes: &BTreeSet<String>, edges: &Edges) -> Vec<BTreeSet<String>> {
    let reach = |start: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.clone()];
        while let Some(node) = stack.pop() {
            for (from, to) in edges.keys() {
                if *from == node && seen.insert(to.clone()) {
                    stack.push(to.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (n, reach(n))).collect();
    let mut groups: Vec<BTreeSet<String>> = Vec::new();
    for node in nodes {
        if groups.iter().any(|g| g.contains(node)) {
            continue;
        }
        let group: BTreeSet<String> = nodes
            .iter()
            .filter(|other| {
                *other == node || (reached[node].contains(*other) && reached[*other].contains(node))
            })
            .cloned()
            .collect();
        if group.len() > 1 {
            groups.push(group);
        }
    }
    groups
}

/// One loop through `group`, starting and ending at its first node.
fn one_loop(group: &BTreeSet<String>, edges: &Edges) -> Vec<String> {
    let start = group.first().expect("a group has nodes").clone();
    let mut came_from: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = VecDeque::from([start.clone()]);
    while let Some(node) = queue.pop_front() {
        for (from, to) in edges.keys() {
            if *from != node || !group.contains(to) || came_from.contains_key(to) {
                continue;
            }
            came_from.insert(to.clone(), node.clone());
            if *to == start {
                let mut path = vec![start.clone()];
                let mut at = node.clone();
                while at != start {
                    path.push(at.clone());
                    at = came_from[&at].clone();
                }
                path.push(start);
                path.reverse();
                return path;
            }
            queue.push_back(to.clone());
        }
    }
    unreachable!("every node of a group reaches the others")
}

/// What is wrong with the imports below `scope`, or `None`.
fn report(sources: &[Source], scope: &[&str]) -> Option<String> {
    let (nodes, edges) = edges(sources, scope);
    let groups = loops(&nodes, &edges);
    if groups.is_empty() {
        return None;
    }
    let level = if scope.is_empty() {
        "top-level modules".to_string()
    } else {
        format!("the parts of {}", scope.join("::"))
    };
    let mut text = String::new();
    for group in groups {
        let members: Vec<&str> = group.iter().map(String::as_str).collect();
        let _ = writeln!(text, "import cycle among {level}: {}", members.join(", "));
        let _ = writeln!(text, "  for one: {}", one_loop(&group, &edges).join(" -> "));
        for ((from, to), at) in &edges {
            if group.contains(from) && group.contains(to) {
                let _ = writeln!(text, "  {from} -> {to}  {at}");
            }
        }
    }
    Some(text)
}

fn assert_acyclic(scope: &[&str]) {
    let files = read_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    if let Some(problem) = report(&sources(&files), scope) {
        panic!("{problem}");
    }
}

#[test]
fn top_level_modules_import_downward_only() {
    assert_acyclic(&[]);
}

#[test]
fn the_parts_of_plan_import_downward_only() {
    assert_acyclic(&["plan"]);
}

fn literal_sources(files: &[(&str, &str)]) -> Vec<Source> {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    sources(&files)
}

#[test]
fn a_loop_is_named_with_one_place_per_import() {
    let sources = literal_sources(&[
        (
            "a.rs",
            "//! a\n\nuse crate::{\n    b::Thing,\n    leaf::Value,\n};\n",
        ),
        ("b/mod.rs", "mod inner;\n"),
        ("b/inner.rs", "fn f() -> usize {\n    crate::a::SIZE\n}\n"),
        ("leaf.rs", "pub struct Value;\n"),
    ]);
    let problem = report(&sources, &[]).expect("a and b import each other");
    assert_eq!(
        problem,
        "import cycle among top-level modules: a, b\n  for one: a -> b -> a\n  a -> b  src/a.rs:4\n  b -> a  src/b/inner.rs:2\n"
    );
}

#[test]
fn comments_literals_and_test_code_are_not_imports() {
    let sources = literal_sources(&[
        ("a.rs", "use crate::b::X;\n"),
        (
            "b.rs",
            concat!(
                "// crate::a::X would loop\n",
                "/* crate::a::X /* nested */ crate::a::X */\n",
                "const S: &str = \"crate::a::X\";\n",
                "const R: &str = r#\"crate::a::\"X\"#;\n",
                "const C: char = '\"'; fn f<'a>(x: &'a str) {}\n",
                "#[cfg(test)]\nuse crate::a::Y;\n",
                "#[cfg(test)]\nmod tests {\n    use crate::a::X;\n    fn g() { let _ = { 1 }; }\n}\n",
                "#[cfg(test)]\nmod more;\n",
            ),
        ),
        ("b/more.rs", "use crate::a::X;\n"),
    ]);
    assert_eq!(report(&sources, &[]), None);
}

#[test]
fn super_paths_count_between_the_parts_of_a_module() {
    let sources = literal_sources(&[
        ("plan/mod.rs", "pub mod one;\npub mod two;\n"),
        ("plan/one.rs", "use super::two::Graph;\n"),
        ("plan/two/mod.rs", "mod deep;\n"),
        ("plan/two/deep.rs", "fn f() { super::super::one::g() }\n"),
    ]);
    assert_eq!(
        report(&sources, &["plan"]).as_deref(),
        Some(concat!(
            "import cycle among the parts of plan: plan::one, plan::two\n",
            "  for one: plan::one -> plan::two -> plan::one\n",
            "  plan::one -> plan::two  src/plan/one.rs:1\n",
            "  plan::two -> plan::one  src/plan/two/deep.rs:1\n",
        ))
    );
    assert_eq!(
        report(&sources, &[]),
        None,
        "one top-level module has no loop of its own"
    );
}
