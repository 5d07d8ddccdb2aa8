//! Running a command inside a container (`docker exec`), for lifecycle hooks: bounded in time,
//! its output capped, its exit status read back.

use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::StreamExt;

use super::{Engine, EngineError};

/// How much of a command's output (stdout and stderr, interleaved) is kept.
pub const EXEC_OUTPUT_LIMIT: usize = 4096;

/// How often, and how far apart, an exec whose output ended is asked for its exit status
/// (2 s in all).
const EXIT_STATUS_TRIES: usize = 40;
const EXIT_STATUS_PAUSE: Duration = Duration::from_millis(50);

/// How a command run inside a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecEnd {
    /// It exited with this status.
    Exited(i64),
    /// It was still running when tidewatch stopped waiting. The Engine API cannot kill an
    /// exec: the process goes on in the container.
    TimedOut,
    /// Its output ended but the engine gave no exit status.
    Unknown,
}

/// What a command run inside a container did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRun {
    /// How it ended.
    pub end: ExecEnd,
    /// The first [`EXEC_OUTPUT_LIMIT`] bytes of its output, lossy UTF-8.
    pub output: String,
    /// Whether more output was discarded.
    pub truncated: bool,
}

impl Engine {
    /// Runs `argv` in `container` and waits up to `timeout` for it to end. The command gets
    /// the container's own environment and default user, and nothing of tidewatch's (no
    /// variables of ours, no privileges, no terminal, no input).
    pub async fn exec(
        &self,
        container: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecRun, EngineError> {
        let what = || format!("running a command in container {container}");
        let created = self
            .docker()
            .create_exec(
                container,
                CreateExecOptions::<String> {
                    cmd: Some(argv.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    attach_stdin: Some(false),
                    tty: Some(false),
                    // Appended to the container's own environment; ours is never passed.
                    env: Some(Vec::new()),
                    privileged: Some(false),
                    ..Default::default()
                },
            )
            .await
            .map_err(EngineError::request(what()))?;
        let started = self
            .docker()
            .start_exec(&created.id, None)
            .await
            .map_err(EngineError::request(what()))?;
        let StartExecResults::Attached { mut output, .. } = started else {
            return Err(EngineError::Raw {
                what: what(),
                reason: "the engine started the command detached".into(),
            });
        };
        let mut kept: Vec<u8> = Vec::new();
        let mut truncated = false;
        let read = async {
            while let Some(chunk) = output.next().await {
                let bytes = chunk.map_err(EngineError::request(what()))?.into_bytes();
                // Read to the end regardless, so the command never blocks on a full pipe.
                let room = EXEC_OUTPUT_LIMIT.saturating_sub(kept.len());
                if bytes.len() > room {
                    truncated = true;
                }
                kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            Ok::<(), EngineError>(())
        };
        let timed_out = match tokio::time::timeout(timeout, read).await {
            Ok(result) => {
                result?;
                false
            }
            Err(_) => true,
        };
        let end = if timed_out {
            ExecEnd::TimedOut
        } else {
            self.exit_status(&created.id, &what).await?
        };
        Ok(ExecRun {
            end,
            output: String::from_utf8_lossy(&kept).into_owned(),
            truncated,
        })
    }

    /// The exit status of exec `id` whose output has ended. The engine may close the output a
    /// moment before it records the exit, so a still-running exec is asked again for a while.
    async fn exit_status(
        &self,
        id: &str,
        what: &impl Fn() -> String,
    ) -> Result<ExecEnd, EngineError> {
        for _ in 0..EXIT_STATUS_TRIES {
            let inspect = self
                .docker()
                .inspect_exec(id)
                .await
                .map_err(EngineError::request(what()))?;
            match (inspect.running, inspect.exit_code) {
                (Some(true), _) => tokio::time::sleep(EXIT_STATUS_PAUSE).await,
                (_, Some(code)) => return Ok(ExecEnd::Exited(code)),
                (_, None) => return Ok(ExecEnd::Unknown),
            }
        }
        Ok(ExecEnd::Unknown)
    }
}
