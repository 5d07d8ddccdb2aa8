//! tidewatch: a pull-based container update agent.
//!
//! One cycle is `inventory` (engine) -> `resolve` (registry) -> `plan` (pure) -> `apply`
//! (engine, journalled). Only the engine and registry adapters and `apply` do I/O; the planning
//! core is pure and unit-tested on literals.

pub mod plan;
pub mod state;
