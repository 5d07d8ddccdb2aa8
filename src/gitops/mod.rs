//! GitOps write-back: the images a git repository's files name, and their surgical pins.
pub mod yaml;
