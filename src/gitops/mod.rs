//! GitOps write-back: images named in a git repository's files, pinned by a commit.

pub mod checkout;
pub mod git;
pub mod plan;
pub mod run;
pub mod yaml;
