//! The test bed: a real docker engine (prepared by `scripts/test-env`), throw-away registries,
//! tiny busybox images, and the `tidewatch` binary run the way a user runs it.
//!
//! Everything a test creates is tied to its [`TestBed`]: containers and images carry its id as a
//! label and its scope, registries live on their own port and directory. Tests therefore run in
//! parallel without seeing each other, and clean up after themselves even when they fail.

// Each test module uses only some of these helpers; the ones it does not use are not dead.
#![allow(dead_code, unused_imports)]

mod agent;
pub mod agent_cli;
mod agent_image;
mod bed;
pub mod browser;
pub mod compose;
mod containers;
pub mod cosign;
mod cycle;
pub mod daemon_api;
mod docker;
mod docker_config;
mod engine_proxy;
mod engine_tls;
mod flaky_server;
mod fleet;
pub mod git;
mod htpasswd;
pub mod http;
mod images;
pub mod mqtt;
pub mod objects;
mod observe;
mod podman;
mod poller;
mod process;
pub mod receiver;
mod registry;
pub mod release;
mod serve;
mod service;
pub mod settings;
pub mod smtp;
mod swarm;
mod tcp_server;
mod tls;
mod token_server;

pub use agent::{
    tidewatch, tidewatch_with_env, Agent, Check, Outcome, RegistryEntry, Row, Status, StepResult,
    UpdateRun,
};
pub use agent_image::{AgentContainer, CYCLE_FINISHED};
pub use bed::{TestBed, SCOPE_LABEL, TEST_LABEL};
pub use containers::{Broken, Web, QUICK_STOP, START_TIMEOUT};
pub use cycle::{Daemon, DryRun, HistoryRow, Update, Updater, RUN_INTERVAL};
pub use docker::{docker, image_id, try_docker, Engine};
pub use docker_config::{CredentialHelper, DockerConfig};
pub use engine_proxy::{BeforeRequest, EngineProxy, EngineRequest};
pub use engine_tls::TlsEngine;
pub use flaky_server::{Fault, FlakyServer, Length, Requests, Seen};
pub use fleet::{agent_dir, Demoted, Fleet, NodeContainers};
pub use images::{page, pull, push, repo_digests, tag, APP_PORT};
pub use observe::{show_events, Event, Events, Monitor, Sighting, Snapshot};
pub use podman::{Podman, PodmanBed};
pub use process::Background;
pub use registry::{DeadRegistry, Registry, RegistryOptions, Request};
pub use serve::percent_decode;
pub use tls::{EngineTrust, TestCa};
pub use token_server::{TokenRequest, TokenServer};

/// A fresh directory for a test's files, removed on drop, under this checkout's
/// `target/tmp` rather than the shared `/tmp`: other checkouts and people clean `/tmp` by
/// pattern, and a registry whose storage vanishes mid-test answers 404 for what it was sent.
pub fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    let root = env!("CARGO_TARGET_TMPDIR");
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(root)
        .unwrap_or_else(|error| panic!("cannot create a directory in {root}: {error}"))
}

pub use service::{OnTerm, Volume};
pub use swarm::{require_swarm, with_swarm_settings, RunningWatch, Services, SWARM_SETTINGS};
