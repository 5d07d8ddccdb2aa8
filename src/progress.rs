//! What a person at a terminal sees while `update` or `rollback` works: a line per image being
//! pulled (bytes done of total and a rate) and a line per wait (for health, for Swarm to
//! converge) with the time spent and the limit.
//!
//! Bars are drawn only when the command asked for them (stderr is a terminal, no `--json`);
//! otherwise, and always in `run`, a pull or wait in flight logs the same figures every
//! [`LOG_EVERY`]. Log lines written while bars are on screen go through [`stderr`], which
//! lifts the bars out of the way first, so neither garbles the other.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bollard::models::CreateImageInfo;
use indicatif::{HumanBytes, HumanDuration, MultiProgress, ProgressBar, ProgressStyle};

/// How often a pull or a wait in flight is logged when no bars are drawn.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// How often a drawn line is refreshed on its own (the elapsed time moves between messages).
const TICK: Duration = Duration::from_millis(200);

/// The bars of this process. One terminal, one set of bars: the log writer must find them
/// without being handed them, as it is installed before any command knows what it will do.
static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// How progress is shown. Cheap to clone; every clone shows on the same bars.
#[derive(Clone)]
pub struct Progress {
    bars: Option<Arc<MultiProgress>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.bars.is_some() {
            "Progress::Bars"
        } else {
            "Progress::Log"
        })
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::log()
    }
}

impl Progress {
    /// Log lines every [`LOG_EVERY`], no bars: for the daemon, `--json` and piped output.
    pub fn log() -> Progress {
        Progress { bars: None }
    }

    /// Bars on stderr when `wanted` and stderr is a terminal, else [`Progress::log`].
    pub fn for_terminal(wanted: bool) -> Progress {
        use std::io::IsTerminal as _;
        if !wanted || !io::stderr().is_terminal() {
            return Progress::log();
        }
        let bars = BARS.get_or_init(MultiProgress::new).clone();
        Progress {
            bars: Some(Arc::new(bars)),
        }
    }

    /// Starts showing the pull of `image`; feed it the engine's progress messages.
    pub fn pull(&self, image: &str) -> PullDisplay {
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::new_spinner());
            bar.set_style(line_style());
            bar.set_prefix(format!("pulling {}", short_digest(image)));
            bar.enable_steady_tick(TICK);
            bar
        });
        PullDisplay {
            image: image.to_string(),
            tally: PullTally::default(),
            started: Instant::now(),
            last_log: Instant::now(),
            bar,
        }
    }

    /// Starts showing a wait for `what` (e.g. "web to be healthy") of at most `limit`. Call
    /// [`WaitDisplay::tick`] from the waiting loop; the line goes when the display is dropped.
    pub fn wait(&self, what: &str, limit: Duration) -> WaitDisplay {
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::new_spinner());
            bar.set_style(line_style());
            bar.set_prefix(format!("waiting for {what}"));
            bar.enable_steady_tick(TICK);
            bar
        });
        let display = WaitDisplay {
            what: what.to_string(),
            limit,
            started: Instant::now(),
            last_log: Instant::now(),
            bar,
        };
        display.draw();
        display
    }
}

fn line_style() -> ProgressStyle {
    // No colours: nothing to honour NO_COLOR for, and nothing lost on a plain terminal.
    ProgressStyle::with_template("{spinner} {prefix}: {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// `repo@sha256:` with 12 hex digits, as `docker image ls` shortens ids: a full digest makes
/// the line wider than a terminal. Anything else is shown as it is.
fn short_digest(image: &str) -> &str {
    match image.find("@sha256:") {
        Some(at) => {
            let end = at + "@sha256:".len() + 12;
            image.get(..end).unwrap_or(image)
        }
        None => image,
    }
}

/// The pull of one image on screen or in the log.
pub struct PullDisplay {
    image: String,
    tally: PullTally,
    started: Instant,
    last_log: Instant,
    bar: Option<ProgressBar>,
}

impl PullDisplay {
    /// Takes one progress message of the engine's pull stream.
    pub fn observe(&mut self, info: &CreateImageInfo) {
        let detail = info.progress_detail.as_ref();
        self.tally.observe(
            info.id.as_deref(),
            info.status.as_deref(),
            detail.and_then(|d| d.current),
            detail.and_then(|d| d.total),
        );
        let figures = self.figures();
        match &self.bar {
            Some(bar) => bar.set_message(figures),
            None if self.last_log.elapsed() >= LOG_EVERY => {
                self.last_log = Instant::now();
                tracing::info!(image = %self.image, progress = %figures, "pulling");
            }
            None => {}
        }
    }

    /// Bytes done (of total) and the mean rate since the pull began.
    fn figures(&self) -> String {
        let (done, total) = self.tally.bytes();
        let rate = rate(done, self.started.elapsed());
        match total {
            Some(total) => format!(
                "{} / {} at {}/s",
                HumanBytes(done),
                HumanBytes(total),
                HumanBytes(rate)
            ),
            None => format!("{} at {}/s", HumanBytes(done), HumanBytes(rate)),
        }
    }

    /// Ends the line: what was pulled, in how long, or that it failed.
    pub fn finish(self, ok: bool) {
        if let Some(bar) = &self.bar {
            let (done, _) = self.tally.bytes();
            let took = HumanDuration(self.started.elapsed());
            if ok {
                bar.finish_with_message(format!("done, {} in {took}", HumanBytes(done)));
            } else {
                bar.abandon_with_message("failed");
            }
        }
    }
}

/// A wait on screen or in the log.
pub struct WaitDisplay {
    what: String,
    limit: Duration,
    started: Instant,
    last_log: Instant,
    bar: Option<ProgressBar>,
}

impl WaitDisplay {
    /// Refreshes the figures; logs them every [`LOG_EVERY`] when no bar is drawn.
    pub fn tick(&mut self) {
        match &self.bar {
            Some(_) => self.draw(),
            None if self.last_log.elapsed() >= LOG_EVERY => {
                self.last_log = Instant::now();
                tracing::info!(
                    waiting_for = %self.what,
                    elapsed = %whole_seconds(self.started.elapsed()),
                    limit = %humantime::format_duration(self.limit),
                    "waiting"
                );
            }
            None => {}
        }
    }

    fn draw(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{} of {}",
                whole_seconds(self.started.elapsed()),
                humantime::format_duration(self.limit)
            ));
        }
    }
}

impl Drop for WaitDisplay {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn whole_seconds(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
}

/// Mean bytes per second, 0 before any time has passed.
fn rate(bytes: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs < 0.001 {
        return 0;
    }
    // Saturating float-to-int cast: an absurd figure from the engine shows as u64::MAX.
    (bytes as f64 / secs) as u64
}

/// Bytes of one pull, summed over its layers from the engine's progress messages.
///
/// The engine reports each layer by its short id: "Pulling fs layer" or "Waiting" when it is
/// to be fetched, "Downloading" with bytes current/total, then "Verifying Checksum",
/// "Download complete", "Extracting" and "Pull complete"; "Already exists" for a layer it has.
/// Messages without an id ("Digest: ...", "Status: ...") and unknown statuses are ignored.
#[derive(Debug, Default)]
pub struct PullTally {
    layers: BTreeMap<String, Layer>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Layer {
    done: u64,
    total: Option<u64>,
}

impl PullTally {
    /// Takes one message's layer id, status and byte counts.
    pub fn observe(
        &mut self,
        id: Option<&str>,
        status: Option<&str>,
        current: Option<i64>,
        total: Option<i64>,
    ) {
        let (Some(id), Some(status)) = (id, status) else {
            return;
        };
        let bytes = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
        match status {
            "Pulling fs layer" | "Waiting" => {
                self.layers.entry(id.to_string()).or_default();
            }
            "Downloading" => {
                let layer = self.layers.entry(id.to_string()).or_default();
                if let Some(total) = bytes(total).filter(|t| *t > 0) {
                    layer.total = Some(total);
                }
                if let Some(current) = bytes(current) {
                    // Never more than the total, never backwards: a retry restarts at 0.
                    let current = layer.total.map_or(current, |t| current.min(t));
                    layer.done = layer.done.max(current);
                }
            }
            "Verifying Checksum" | "Download complete" | "Extracting" | "Pull complete" => {
                // Only layers this pull fetches: a later status of an unseen id is not ours
                // to count (the engine had it, or reported it before we listened).
                if let Some(layer) = self.layers.get_mut(id) {
                    if let Some(total) = layer.total {
                        layer.done = total;
                    }
                }
            }
            "Already exists" => {
                self.layers.remove(id);
            }
            _ => {}
        }
    }

    /// Bytes done over every layer being fetched, and the total when every layer's is known.
    pub fn bytes(&self) -> (u64, Option<u64>) {
        let done = self
            .layers
            .values()
            .fold(0u64, |sum, l| sum.saturating_add(l.done));
        let total = self
            .layers
            .values()
            .try_fold(0u64, |sum, l| l.total.map(|t| sum.saturating_add(t)));
        (done, total.filter(|t| *t > 0))
    }
}

/// Log output that lifts the bars out of the way while a line is written. The `tracing`
/// subscriber writes each event with one call, so a line is never split by a redraw.
pub fn stderr() -> BarSafeStderr {
    BarSafeStderr
}

/// See [`stderr`].
pub struct BarSafeStderr;

impl Write for BarSafeStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match BARS.get() {
            Some(bars) => bars.suspend(|| io::stderr().write(buf)),
            None => io::stderr().write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match BARS.get() {
            Some(bars) => bars.suspend(|| io::stderr().write_all(buf)),
            None => io::stderr().write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(tally: &mut PullTally, id: &str, status: &str, current: i64, total: i64) {
        tally.observe(Some(id), Some(status), Some(current), Some(total));
    }

    #[test]
    fn sums_downloading_layers_and_counts_finished_ones_whole() {
        let mut t = PullTally::default();
        t.observe(Some("a"), Some("Pulling fs layer"), None, None);
        t.observe(Some("b"), Some("Pulling fs layer"), None, None);
        assert_eq!(t.bytes(), (0, None), "no total until every layer has one");
        feed(&mut t, "a", "Downloading", 100, 1000);
        assert_eq!(t.bytes(), (100, None));
        feed(&mut t, "b", "Downloading", 50, 500);
        assert_eq!(t.bytes(), (150, Some(1500)));
        t.observe(Some("a"), Some("Download complete"), None, None);
        assert_eq!(t.bytes(), (1050, Some(1500)));
        // Extraction reports its own byte counts: they are not download progress.
        feed(&mut t, "b", "Extracting", 10, 500);
        assert_eq!(t.bytes(), (1500, Some(1500)));
    }

    #[test]
    fn layers_the_engine_has_and_messages_without_a_layer_are_not_counted() {
        let mut t = PullTally::default();
        t.observe(Some("a"), Some("Pulling fs layer"), None, None);
        t.observe(Some("a"), Some("Already exists"), None, None);
        t.observe(Some("sha256:abc"), Some("Pulling from app"), None, None);
        t.observe(None, Some("Digest: sha256:abc"), None, None);
        t.observe(Some("c"), Some("Pull complete"), None, None);
        assert_eq!(t.bytes(), (0, None));
        assert!(t.layers.is_empty());
    }

    #[test]
    fn untrusted_figures_neither_overflow_nor_run_backwards() {
        let mut t = PullTally::default();
        feed(&mut t, "a", "Downloading", -5, -1);
        assert_eq!(t.bytes(), (0, None));
        feed(&mut t, "a", "Downloading", i64::MAX, 10);
        assert_eq!(t.bytes(), (10, Some(10)), "current is capped at the total");
        feed(&mut t, "a", "Downloading", 3, 10);
        assert_eq!(
            t.bytes(),
            (10, Some(10)),
            "a lower figure does not undo progress"
        );
        feed(&mut t, "b", "Downloading", i64::MAX, i64::MAX);
        feed(&mut t, "c", "Downloading", i64::MAX, i64::MAX);
        assert_eq!(t.bytes(), (u64::MAX, Some(u64::MAX)), "sums saturate");
    }

    #[test]
    fn a_digest_is_shortened_to_twelve_digits_and_nothing_else_is_cut() {
        let full = format!("reg:5000/app@sha256:{}", "ab".repeat(32));
        assert_eq!(short_digest(&full), "reg:5000/app@sha256:abababababab");
        assert_eq!(
            short_digest("reg:5000/app@sha256:abc"),
            "reg:5000/app@sha256:abc"
        );
        assert_eq!(short_digest("app:latest"), "app:latest");
    }

    #[test]
    fn rate_is_bytes_over_seconds_and_zero_at_the_start() {
        assert_eq!(rate(1000, Duration::ZERO), 0);
        assert_eq!(rate(1000, Duration::from_secs(2)), 500);
        assert_eq!(rate(u64::MAX, Duration::from_millis(1)), u64::MAX);
    }
}
