//! Pinning: the new reference text, and the edit that writes it into a file byte for byte.

use super::tree::Style;
use super::{EditError, Site};

/// What a [`Site`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SiteKind {
    /// A scalar holding a whole reference (compose, workloads).
    Reference(Target),
    /// A kustomization `images:` entry.
    Kustomize(KustomizeSite),
}

/// The bytes of one scalar, quotes included, as the scan saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    pub start: usize,
    pub raw: String,
    pub style: Style,
}

impl Target {
    fn end(&self) -> usize {
        self.start + self.raw.len()
    }
}

/// A kustomization entry: the scalars it has, and where a missing key goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KustomizeSite {
    /// `newName`, or `name` without one.
    pub name: String,
    /// `newTag`'s bytes and value.
    pub new_tag: Option<(Target, String)>,
    /// `digest`'s bytes.
    pub digest: Option<Target>,
    /// `None` when the entry's last value is not a one-line scalar to add a key after.
    pub insertion: Option<Insertion>,
}

/// Where keys are added to a kustomization entry. `check` is the text from `check_from` (the
/// entry's last value) to `at`, which must still be there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Insertion {
    /// New lines at `at` (the start of the line after the last value, or the file's end).
    Block {
        check_from: usize,
        check: String,
        at: usize,
        /// Spaces up to the entry's keys.
        indent: String,
        /// The line ending of the last value's line (or of the file, at its end).
        eol: &'static str,
        /// The file ends without a line ending: the new lines start with one instead.
        lead: bool,
    },
    /// `, key: value` at `at`, right after the last value of a flow mapping.
    Flow {
        check_from: usize,
        check: String,
        at: usize,
    },
}

/// The new reference text for `current` pinned to `digest`: `repo:tag@sha256:new`, an existing
/// `@digest` replaced, the tag replaced by `new_tag` when a tag policy moved it. The name stays
/// as written (not normalised). A reference with neither tag nor digest means `latest`, which
/// is written out so that the next lookup still has the tag to follow.
pub fn pinned(current: &str, digest: &str, new_tag: Option<&str>) -> String {
    let (name_and_tag, had_digest) = match current.split_once('@') {
        Some((n, _)) => (n, true),
        None => (current, false),
    };
    let (name, tag) = split_tag(name_and_tag);
    let tag = new_tag
        .or(tag)
        .or(if had_digest { None } else { Some("latest") });
    match tag {
        Some(tag) => format!("{name}:{tag}@{digest}"),
        None => format!("{name}@{digest}"),
    }
}

/// `name` and the tag after the last `:` that follows the last `/` (`host:5000/app` has none).
fn split_tag(name_and_tag: &str) -> (&str, Option<&str>) {
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    match name_and_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_and_tag[..last_slash + i],
            Some(&name_and_tag[last_slash + i + 1..]),
        ),
        None => (name_and_tag, None),
    }
}

/// Applies edits to `text`: for a compose or workload site, the new reference (from
/// [`pinned`]); for a kustomization entry, the new reference too (its digest goes to
/// `digest:`, its tag to `newTag:` when it moved) or only the digest (`sha256:...`). Only the
/// bytes of each edited scalar change, in its quoting style; a missing `digest:` (or
/// `newTag:`) is inserted as one line with the entry's indentation and line ending (or as
/// `, digest: ...` in a flow mapping). Nothing is returned but the error when any site no
/// longer matches `text`; rows sharing an anchor may pin it twice with the same text.
pub fn pin(text: &str, edits: &[(Site, String)]) -> Result<String, EditError> {
    let mut changes = Vec::new();
    for (Site(site), new) in edits {
        match site {
            SiteKind::Reference(target) => {
                safe(new, true)?;
                replace(text, target, new, &mut changes)?;
            }
            SiteKind::Kustomize(entry) => kustomize(text, entry, new, &mut changes)?,
        }
    }
    changes.sort_by_key(|c| (c.start, c.end));
    changes.dedup();
    for pair in changes.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.start < a.end || (a.start, a.end) == (b.start, b.end) {
            return Err(EditError::Conflict { offset: b.start });
        }
    }
    let mut out = String::with_capacity(text.len() + changes.len() * 80);
    let mut from = 0;
    for change in &changes {
        out.push_str(&text[from..change.start]);
        out.push_str(&change.text);
        from = change.end;
    }
    out.push_str(&text[from..]);
    Ok(out)
}

/// `text[start..end]` becomes `text`.
#[derive(Debug, PartialEq, Eq)]
struct Change {
    start: usize,
    end: usize,
    text: String,
}

/// Only what a reference or digest is made of, so that a written value can neither end its
/// scalar nor start a comment: ASCII letters and digits and `._-/:@+_` (and no `@` in a digest).
fn safe(value: &str, reference: bool) -> Result<(), EditError> {
    let ok = !value.is_empty()
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric() || b"._-/:+_".contains(&b) || (reference && b == b'@')
        });
    if ok {
        Ok(())
    } else {
        Err(EditError::Unsafe {
            value: value.to_string(),
        })
    }
}

/// Checks that `text` still has `expected` at `offset`.
fn expect(text: &str, offset: usize, expected: &str) -> Result<(), EditError> {
    if text.get(offset..offset + expected.len()) == Some(expected) {
        Ok(())
    } else {
        Err(EditError::Stale {
            offset,
            expected: expected.to_string(),
        })
    }
}

/// Rewrites the scalar at `target` to `value`, quoted as it was.
fn replace(
    text: &str,
    target: &Target,
    value: &str,
    changes: &mut Vec<Change>,
) -> Result<(), EditError> {
    expect(text, target.start, &target.raw)?;
    let written = match target.style {
        Style::Plain => value.to_string(),
        Style::Single => format!("'{value}'"),
        Style::Double => format!("\"{value}\""),
    };
    changes.push(Change {
        start: target.start,
        end: target.end(),
        text: written,
    });
    Ok(())
}

/// The edits of one kustomization entry for `new` (a reference or a digest).
fn kustomize(
    text: &str,
    entry: &KustomizeSite,
    new: &str,
    changes: &mut Vec<Change>,
) -> Result<(), EditError> {
    let (tag, digest) = match new.split_once('@') {
        Some((name_and_tag, digest)) => {
            safe(name_and_tag, false)?;
            let (name, tag) = split_tag(name_and_tag);
            if name != entry.name {
                return Err(EditError::OtherImage {
                    value: new.to_string(),
                    name: entry.name.clone(),
                });
            }
            (tag, digest)
        }
        None => (None, new),
    };
    safe(digest, false)?;
    if !digest.contains(':') {
        return Err(EditError::Unsafe {
            value: new.to_string(),
        });
    }
    let mut added: Vec<(&'static str, String)> = Vec::new();
    if let Some(tag) = tag {
        match &entry.new_tag {
            Some((_, current)) if current == tag => {}
            Some((target, _)) => replace(text, target, tag, changes)?,
            // Quoted, as a tag such as 1.30 would be read as a number.
            None => added.push(("newTag", format!("\"{tag}\""))),
        }
    }
    match &entry.digest {
        Some(target) => replace(text, target, digest, changes)?,
        None => added.push(("digest", digest.to_string())),
    }
    let Some((key, _)) = added.first() else {
        return Ok(());
    };
    let Some(insertion) = &entry.insertion else {
        return Err(EditError::NoInsertion {
            key,
            name: entry.name.clone(),
        });
    };
    let (at, written) = match insertion {
        Insertion::Block {
            check_from,
            check,
            at,
            indent,
            eol,
            lead,
        } => {
            expect(text, *check_from, check)?;
            let mut written = String::new();
            for (key, value) in &added {
                if *lead {
                    written.push_str(eol);
                }
                written.push_str(&format!("{indent}{key}: {value}"));
                if !*lead {
                    written.push_str(eol);
                }
            }
            (*at, written)
        }
        Insertion::Flow {
            check_from,
            check,
            at,
        } => {
            expect(text, *check_from, check)?;
            let written = added
                .iter()
                .map(|(key, value)| format!(", {key}: {value}"))
                .collect();
            (*at, written)
        }
    };
    changes.push(Change {
        start: at,
        end: at,
        text: written,
    });
    Ok(())
}
