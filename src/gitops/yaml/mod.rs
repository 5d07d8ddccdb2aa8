//! The images a repository's YAML files name, and the surgical edit that pins them: pure, no
//! I/O (the git side reads and writes the files).
//!
//! [`scan`] reads three kinds of document, in any file and per document of a multi-document
//! file (`---`); other documents are ignored:
//! - **compose** (a document with no `kind` and a `services:` mapping): `services.*.image`,
//!   with the service's `labels:` (a mapping or a list of `key=value`). A service with `build:`
//!   is skipped: compose builds its image rather than pulling it.
//! - **Kubernetes workloads** (`Deployment`, `StatefulSet`, `DaemonSet`, `ReplicaSet`, `Job`,
//!   `CronJob` through its `jobTemplate`, `Pod`): the `image` of every `containers` and
//!   `initContainers` entry, with the workload's `metadata.annotations` as labels.
//! - **kustomizations** (`kind: Kustomization`, or a file named `kustomization.yaml`,
//!   `kustomization.yml` or `Kustomization`; Flux's `Kustomization` keeps them under `spec`):
//!   each `images:` entry with a `newTag` or a `digest`, as `newName` (or `name`), `:newTag`
//!   and `@digest` put together. An entry with neither only renames an image whose tag the
//!   workload's manifest gives, so it is left to that manifest.
//!
//! A value with `$` in it (compose's `${VAR}` or `$VAR` interpolation, Flux's post-build
//! substitution) is skipped, not an error: what it means is only known where it is deployed.
//! YAML anchors, aliases and merge keys (`<<: *defaults`) are followed; an image that comes
//! from an anchor is pinned where the anchor is, for every row that uses it (and is that row's
//! error when the anchor is also used as something else, a name or a label, which the pin would
//! change too). Look-ups through merge keys share a budget per file, so a file built to make
//! them explode is the file's error rather than minutes of work.
//!
//! [`pin`] rewrites only the bytes of each pinned scalar, in its quoting style, so comments,
//! indentation, key order, blank lines and line endings stay as they were. An image can be
//! pinned when it is written on one line without escapes (plain, `'single'` or `"double"`
//! quoted); a block scalar (`|`, `>`) or a value folded over lines is that row's error.

mod edit;
mod scan;
mod tree;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use edit::{pin, pinned};
pub use scan::scan;

/// The largest file [`scan`] reads: a manifest or compose file is kilobytes; a file far larger
/// is not one, and its parse would hold memory in proportion.
pub const MAX_FILE_BYTES: usize = 4 << 20;

/// One image reference found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundImage {
    /// The row name: `<file>#<service>` for compose, `<file>#<Kind>/<name>/<container>` for a
    /// workload (init containers too), `<file>#images/<name>` for a kustomization entry.
    pub row: String,
    /// The reference as the file means it, e.g. `registry.lan:5000/app:stable@sha256:...`
    /// (for kustomize: newName or name, newTag, digest put together).
    pub reference: String,
    /// `tidewatch.*` labels (compose `labels:` as a map or a list of `k=v`) or annotations
    /// (a workload's `metadata.annotations`), for `tidewatch.policy` and the tag policies.
    pub labels: BTreeMap<String, String>,
    /// Where the reference is written: 1-based line and column (in characters).
    pub line: usize,
    /// See [`FoundImage::line`].
    pub col: usize,
    /// Where to edit: opaque to the caller, used by [`pin`].
    pub site: Site,
}

/// Where [`pin`] edits a found image: the bytes it expects there and how to rewrite them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site(edit::SiteKind);

/// A file, or one image in it, that cannot be read: `path:line:col: what` (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}:{col}: {what}")]
pub struct ScanError {
    /// The repository-relative path given to [`scan`].
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What is wrong.
    pub what: String,
}

/// One row's error (its image cannot be parsed or pinned) while the file's other rows go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct RowError {
    /// The row name, as [`FoundImage::row`].
    pub row: String,
    /// Where and why.
    pub error: ScanError,
}

/// Why [`pin`] refused to edit a file. Nothing is written when it does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The file no longer has, at a site, the bytes it had when it was scanned.
    #[error("the file changed since it was scanned: expected {expected:?} at byte {offset}")]
    Stale {
        /// Byte offset of the site.
        offset: usize,
        /// The bytes the scan saw there.
        expected: String,
    },
    /// The new text is not something a pin writes (an image reference or a digest).
    #[error("refusing to write {value:?}: not an image reference or digest")]
    Unsafe {
        /// The text refused.
        value: String,
    },
    /// A kustomization entry was given a reference to another image.
    #[error("the new reference {value:?} does not name the entry's image {name:?}")]
    OtherImage {
        /// The new reference given.
        value: String,
        /// The entry's `newName` or `name`.
        name: String,
    },
    /// A kustomization entry needs a key inserted where no line can be added (its last value
    /// is not a one-line scalar).
    #[error("cannot add {key}: to the kustomization entry {name:?}; add it by hand once")]
    NoInsertion {
        /// The key to add.
        key: &'static str,
        /// The entry's `newName` or `name`.
        name: String,
    },
    /// Two edits write different text at the same place (rows sharing an anchor).
    #[error("two pins disagree at byte {offset}")]
    Conflict {
        /// Byte offset where they meet.
        offset: usize,
    },
}
