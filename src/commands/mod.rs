//! The commands behind the CLI. Each returns an [`Exit`]; errors that end a command early carry
//! context and are mapped to exit codes by [`Failure::exit`].

mod check;
mod history;
pub mod manual;
mod rollback;
mod run;
mod status;
mod update;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use crate::cli::{Cli, Command};
use crate::config::{Config, ConfigError, DEFAULT_CONFIG_PATH};
use crate::cycle::Agent;
use crate::engine::Engine;
use crate::notify::{self, Notifications};
use crate::registry::RegistryClient;
use crate::shutdown::Shutdown;
use crate::state::{CycleLock, SharedStore, StateError, Wait};

/// How a command ended. The numbers are part of the CLI contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done (or nothing was due).
    Success = 0,
    /// The command ran, but some items failed (rows in `error`, failed updates).
    Failures = 1,
    /// Bad usage or configuration: nothing was done.
    Usage = 2,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// A command that could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Anything else, with context.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Failure {
    /// The exit code for this failure.
    pub fn exit(&self) -> Exit {
        match self {
            Failure::Config(_) => Exit::Usage,
            Failure::Other(_) => Exit::Failures,
        }
    }
}

/// Runs the command `cli` names.
pub async fn run(cli: Cli) -> Result<Exit, Failure> {
    match &cli.command {
        Command::Validate => {
            let path = cli
                .config
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
            let (_, warnings) = Config::load(&path)?;
            for warning in &warnings {
                eprintln!("tidewatch: warning: {warning}");
            }
            println!("{}: ok", path.display());
            Ok(Exit::Success)
        }
        Command::Check { json, names } => {
            let config = load_config(cli.config.as_deref())?;
            check::run(config, *json, names).await
        }
        Command::Update {
            dry_run,
            force,
            json,
            names,
        } => {
            let config = load_config(cli.config.as_deref())?;
            update::run(config, *dry_run, *force, *json, names).await
        }
        Command::Run => run::run(load_config(cli.config.as_deref())?).await,
        Command::Rollback { name } => {
            rollback::run(load_config(cli.config.as_deref())?, name).await
        }
        Command::History { name, json, limit } => {
            let config = load_config(cli.config.as_deref())?;
            history::run(config, name.as_deref(), *json, *limit).await
        }
        Command::Status { json } => status::run(load_config(cli.config.as_deref())?, *json).await,
        Command::Completions { shell } => {
            let mut stdout = std::io::stdout().lock();
            manual::write_completions(*shell, &mut stdout);
            stdout.flush().context("writing the completion script")?;
            Ok(Exit::Success)
        }
        Command::Man { dir } => {
            let pages = manual::write_man_pages(dir)
                .with_context(|| format!("writing the man pages into {}", dir.display()))?;
            for page in pages {
                println!("{}", page.display());
            }
            Ok(Exit::Success)
        }
    }
}

/// Connects everything a cycle needs.
async fn agent(config: Arc<Config>, shutdown: Shutdown) -> anyhow::Result<Agent> {
    let engine = Engine::connect(&config.docker)
        .await
        .context("connecting to the docker engine")?;
    let registry = RegistryClient::new(config.clone()).context("setting up the registry client")?;
    let store = SharedStore::open(&config.agent.state_dir)
        .await
        .context("opening the state store")?;
    let notifications = Notifications::new(&config.notify).context("setting up notifications")?;
    let own_container = engine
        .own_container()
        .await
        .context("looking for the agent's own container")?;
    if let Some(id) = &own_container {
        tracing::info!(container = %id, "running in a container: it is never recreated mid-cycle");
    }
    Ok(Agent {
        config,
        engine,
        registry,
        store,
        shutdown,
        notifications,
        host: notify::host_name(),
        own_container,
        answered: Default::default(),
    })
}

/// Takes the cycle lock, waiting (and saying so) while another cycle holds it.
async fn cycle_lock(state_dir: &Path) -> anyhow::Result<CycleLock> {
    match CycleLock::acquire(state_dir, Wait::NoWait) {
        Ok(lock) => Ok(lock),
        Err(StateError::Busy { pid, .. }) => {
            let holder = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            tracing::info!("another cycle is in progress{holder}; waiting for it to finish");
            let dir = state_dir.to_path_buf();
            let lock = tokio::task::spawn_blocking(move || CycleLock::acquire(&dir, Wait::Block))
                .await
                .context("waiting for the cycle lock")??;
            Ok(lock)
        }
        Err(e) => Err(e.into()),
    }
}

/// Loads the configuration. Without `-c`/`TIDEWATCH_CONFIG`, a missing default file means the
/// defaults, so `tidewatch check` works on a server that never had a configuration. Warnings
/// (a secret file others can read) are logged once, here.
fn load_config(explicit: Option<&Path>) -> Result<Arc<Config>, ConfigError> {
    let (config, warnings) = match explicit {
        Some(path) => Config::load(path)?,
        None => {
            let path = Path::new(DEFAULT_CONFIG_PATH);
            if path.exists() {
                Config::load(path)?
            } else {
                tracing::info!("no {DEFAULT_CONFIG_PATH}: using the defaults");
                (Config::default(), Vec::new())
            }
        }
    };
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    Ok(Arc::new(config))
}
