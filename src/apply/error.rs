//! Why a step of the recreate procedure failed, for the journal, the log and the step's result.

use crate::engine::EngineError;
use crate::image_ref::ImageRefError;
use crate::plan::recreate::SpecError;

/// A step of the procedure that failed. `Display` is the text users see in the step's result.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The engine refused or failed a request.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The reference to pull is not one.
    #[error(transparent)]
    Reference(#[from] ImageRefError),
    /// The old container's settings do not translate into a create request.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The image the old container runs is gone, and pulling it back by digest failed.
    #[error("{missing}; pulling it back by digest: {source}")]
    OldImageGone {
        /// Why it could not be inspected.
        missing: EngineError,
        /// Why it could not be pulled back.
        source: EngineError,
    },
    /// The container was never inspected, which the procedure needs.
    #[error("internal: {0} was not inspected")]
    NotInspected(String),
    /// The replacement was created but could not be joined to its networks: it exists, and
    /// undoing the step must remove it.
    #[error("{source}")]
    NotConnected {
        /// The replacement's id.
        new_id: String,
        /// Why.
        source: EngineError,
    },
}

impl StepError {
    /// The replacement this failure left behind, if it created one.
    pub fn created(&self) -> Option<&str> {
        match self {
            StepError::NotConnected { new_id, .. } => Some(new_id),
            _ => None,
        }
    }
}
