//! The integration tests, built as one binary so they link once (see STYLE.md).
//!
//! They drive the real `tidewatch` binary against a real docker engine and throw-away registries;
//! `scripts/test` prepares the engine and then runs them.

mod support;

mod agent_image;
mod board;
mod check;
mod crash;
mod engine_requests;
mod engine_tls;
mod fleet;
mod gitops;
mod hooks;
mod mqtt;
mod ops;
mod podman;
mod progress;
mod release_notes;
mod status;
mod swarm;
mod update_flow;
mod update_preserve;
mod verify;
mod wild_registries;
