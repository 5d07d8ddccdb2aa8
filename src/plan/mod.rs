//! The pure planning core: observed containers and remote digests in, decisions out.

pub mod actor;
pub mod detect;
pub mod hooks;
pub mod observed;
pub mod order;
pub mod recover;
pub mod recreate;
pub mod remote;
pub mod rollback;
pub mod swarm;
pub mod track;
pub mod update;
