//! Shutdown, passed in: the daemon and long waits select on it instead of reading signals
//! themselves, so tests can trigger it directly.

use tokio::sync::watch;

/// The sending side: call [`Trigger::trigger`] once to ask everything to stop.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// A cheap, clonable view of whether shutdown was asked for.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A connected trigger and receiver.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    /// Asks every holder of a [`Shutdown`] to stop.
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// A shutdown that never fires, for one-shot commands.
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        // Keep the sender alive forever so `wait` pends instead of seeing a closed channel.
        std::mem::forget(tx);
        Shutdown(rx)
    }

    /// Whether shutdown was asked for.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when shutdown is asked for.
    pub async fn wait(&mut self) {
        // An error means the trigger was dropped: treat that as a shutdown too.
        let _ = self.0.wait_for(|v| *v).await;
    }
}

/// A [`Shutdown`] fired by SIGTERM or SIGINT.
pub fn on_signals() -> std::io::Result<Shutdown> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (trigger, shutdown) = channel();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: finishing the current step, then exiting"),
            _ = int.recv() => tracing::info!("SIGINT: finishing the current step, then exiting"),
        }
        trigger.trigger();
    });
    Ok(shutdown)
}
