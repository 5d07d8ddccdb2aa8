//! The store shared by async code: SQLite calls are short but blocking, so they run on the
//! blocking pool behind a mutex.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{StateError, Store};

/// A clonable handle to one open [`Store`].
#[derive(Clone)]
pub struct SharedStore(Arc<Mutex<Store>>);

impl SharedStore {
    /// Opens the store in `state_dir`.
    pub async fn open(state_dir: &Path) -> Result<SharedStore, StateError> {
        let dir = state_dir.to_path_buf();
        let store = tokio::task::spawn_blocking(move || Store::open(&dir))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        Ok(SharedStore(Arc::new(Mutex::new(store))))
    }

    /// Runs `f` with the store on the blocking pool.
    pub async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> R + Send + 'static,
    ) -> R {
        let store = self.0.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves the SQLite connection itself consistent
            // (every change is one transaction), so a poisoned lock is safe to use.
            let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }
}
