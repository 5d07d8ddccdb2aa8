//! tidewatch: a pull-based container update agent.
//!
//! One cycle is `inventory` (engine) -> `resolve` (registry) -> `plan` (pure) -> `apply`
//! (engine, journalled). Only the engine and registry adapters and `apply` do I/O; the planning
//! core in [`plan`] is pure and unit-tested on literals.

pub mod api;
pub mod apply;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod cosign;
pub mod credentials;
pub mod cycle;
pub mod daemon;
pub mod engine;
pub mod error_chain;
pub mod gitops;
pub mod image_ref;
pub mod labels;
pub mod logging;
pub mod metrics;
#[cfg(test)]
mod module_graph;
pub mod net;
pub mod notify;
pub mod output;
pub mod plan;
pub mod progress;
#[cfg(test)]
mod prop_json;
pub mod registry;
pub mod release_notes;
pub mod report;
pub mod rollback;
pub mod service_manager;
pub mod shutdown;
pub mod state;
