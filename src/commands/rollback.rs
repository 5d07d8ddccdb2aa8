//! `tidewatch rollback NAME`: back to the image NAME ran before its last update, by the same
//! safe procedure, then held there until a newer digest is pushed ([`crate::rollback`]).

use std::sync::Arc;

use super::{agent, cycle_lock, Exit, Failure};
use crate::apply::StepOutcome;
use crate::config::Config;
use crate::progress::Progress;
use crate::rollback::roll_back;
use crate::shutdown;

pub(super) async fn run(config: Arc<Config>, name: &str) -> Result<Exit, Failure> {
    let name = name.trim_start_matches('/').to_string();
    let _lock = cycle_lock(&config.agent.state_dir).await?;
    let mut agent = agent(config, shutdown::on_signals().map_err(anyhow::Error::from)?).await?;
    agent.engine.show_progress(Progress::for_terminal(true));
    let done = roll_back(&agent, &name)
        .await
        .map_err(anyhow::Error::from)?;
    println!(
        "{name}: rolled back to {} and held there until a newer digest is pushed",
        done.back_to
    );
    let mut exit = Exit::Success;
    for sharer in done.sharers {
        if sharer.outcome == StepOutcome::Updated {
            println!("{}: recreated to follow {name}", sharer.container);
        } else {
            println!(
                "{}: {}: {}",
                sharer.container, sharer.outcome, sharer.detail
            );
            exit = Exit::Failures;
        }
    }
    Ok(exit)
}
