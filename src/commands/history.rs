//! `tidewatch history [NAME] [--json]`.

use std::sync::Arc;

use anyhow::Context as _;

use super::{Exit, Failure};
use crate::config::Config;
use crate::output;
use crate::state::SharedStore;

pub(super) async fn run(
    config: Arc<Config>,
    name: Option<&str>,
    json: bool,
    limit: usize,
) -> Result<Exit, Failure> {
    let store = SharedStore::open(&config.agent.state_dir)
        .await
        .context("opening the state store")?;
    let name = name.map(|n| n.trim_start_matches('/').to_string());
    let entries = store
        .with(move |s| s.history(name.as_deref(), limit))
        .await
        .context("reading history")?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&entries).context("encoding history")?
        );
    } else {
        print!("{}", output::history_table(&entries));
    }
    Ok(Exit::Success)
}
