//! Running any tidewatch command with an [`Agent`]'s configuration, and giving that configuration
//! more sections than [`TestBed::agent`](super::TestBed::agent) writes.

use std::fs::OpenOptions;
use std::io::Write;

use super::agent::{Agent, Outcome};

/// Appends `toml` (whole tables, e.g. an `[update]` section) to the agent's configuration file.
pub fn append_config(agent: &Agent, toml: &str) {
    let path = agent.config();
    OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| write!(file, "\n{toml}\n"))
        .unwrap_or_else(|error| panic!("cannot append to {}: {error}", path.display()));
}

/// `tidewatch -c agent.toml ARGS`, in the agent's environment (see [`Agent::run`]).
pub fn run_agent(agent: &Agent, args: &[&str]) -> Outcome {
    agent.run(args)
}
