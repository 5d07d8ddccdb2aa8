//! The pure planning core: observed containers and remote digests in, decisions out.

pub mod detect;
pub mod order;
