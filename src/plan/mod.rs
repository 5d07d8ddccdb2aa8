//! The pure planning core: observed containers and remote digests in, decisions out.

pub mod detect;
pub mod order;
pub mod recreate;
pub mod track;
pub mod update;
