//! Prometheus metrics of the daemon: cycles run and what they did, registry traffic, how long
//! cycles take, and how many containers are in each status. The daemon records into a
//! [`Metrics`] after each cycle; `GET /metrics` encodes it in the Prometheus text format.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::plan::detect::{Signature, Status};
use crate::report::{CycleReport, StepOutcome};

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every step outcome, so each series exists (at zero) before the first update.
const OUTCOMES: [StepOutcome; 4] = [
    StepOutcome::Updated,
    StepOutcome::RolledBack,
    StepOutcome::Failed,
    StepOutcome::Skipped,
];

/// Every container status, so a status no container has any more reads zero, not its last count.
const STATUSES: [Status; 5] = [
    Status::UpToDate,
    Status::UpdateAvailable,
    Status::Unknown,
    Status::Skipped,
    Status::Error,
];

/// Cycle durations span a check of a few containers (well under a second) to several health
/// gates in a row (minutes).
const DURATION_BUCKETS: [f64; 12] = [
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryLabels {
    registry: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignatureLabels {
    result: &'static str,
}

/// Every signature check result, so each series exists (at zero) from the start.
const SIGNATURES: [Signature; 3] = [
    Signature::Verified,
    Signature::Unverified,
    Signature::Rejected,
];

/// A `[[gitops]]` repository, as rows name it (URL without credentials, and branch).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepoLabels {
    repo: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

/// The daemon's metrics. Clones share the same values, so the daemon records into one clone
/// while the API encodes another.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    checks: Counter,
    cycle_errors: Counter,
    cycle_failed: Counter,
    updates: Family<OutcomeLabels, Counter>,
    rollbacks: Counter,
    registry_requests: Family<RegistryLabels, Counter>,
    registry_errors: Family<RegistryLabels, Counter>,
    cycle_duration: Histogram,
    containers: Family<StatusLabels, Gauge>,
    signatures: Family<SignatureLabels, Counter>,
    gitops_commits: Family<RepoLabels, Counter>,
    gitops_pins: Family<RepoLabels, Counter>,
    gitops_errors: Family<RepoLabels, Counter>,
    last_success: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("checks", &self.checks.get())
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Every metric, at zero.
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Arc::default(),
            checks: Counter::default(),
            cycle_errors: Counter::default(),
            cycle_failed: Counter::default(),
            updates: Family::default(),
            rollbacks: Counter::default(),
            registry_requests: Family::default(),
            registry_errors: Family::default(),
            cycle_duration: Histogram::new(DURATION_BUCKETS),
            containers: Family::default(),
            signatures: Family::default(),
            gitops_commits: Family::default(),
            gitops_pins: Family::default(),
            gitops_errors: Family::default(),
            last_success: Gauge::default(),
        };
        for result in SIGNATURES {
            let _ = m.signatures.get_or_create(&SignatureLabels {
                result: result.as_str(),
            });
        }
        // Creating the series is the point: they are listed, at zero, from the start.
        for outcome in OUTCOMES {
            let _ = m.updates.get_or_create(&outcome_labels(outcome));
        }
        for status in STATUSES {
            let _ = m.containers.get_or_create(&StatusLabels {
                status: status.as_str(),
            });
        }
        let mut r = Registry::with_prefix("tidewatch");
        r.register(
            "checks",
            "Cycles run (each checks the registries for the containers in scope)",
            m.checks.clone(),
        );
        r.register(
            "cycle_errors",
            "Cycles that could not run (e.g. the engine was unreachable)",
            m.cycle_errors.clone(),
        );
        r.register(
            "cycle_failed",
            "Cycles that panicked and were abandoned (the agent carries on with the next)",
            m.cycle_failed.clone(),
        );
        r.register(
            "updates",
            "Recreate steps by outcome: updated, rolled_back, failed, skipped",
            m.updates.clone(),
        );
        r.register(
            "rollbacks",
            "New containers that were not healthy and were replaced by the old ones",
            m.rollbacks.clone(),
        );
        r.register(
            "registry_requests",
            "Requests sent to each registry",
            m.registry_requests.clone(),
        );
        r.register(
            "registry_errors",
            "Failed lookups at each registry",
            m.registry_errors.clone(),
        );
        r.register_with_unit(
            "cycle_duration",
            "How long cycles take, from start to the last step's end",
            Unit::Seconds,
            m.cycle_duration.clone(),
        );
        r.register(
            "containers",
            "Watched containers by status in the last check: up_to_date, update_available, unknown, skipped, error",
            m.containers.clone(),
        );
        r.register(
            "signature_checks",
            "New digests whose signatures a [[verify]] rule checked, per cycle and container, by result: verified, unverified (let through in warn mode), rejected (not pulled)",
            m.signatures.clone(),
        );
        r.register(
            "gitops_commits",
            "Commits pushed to each [[gitops]] repository",
            m.gitops_commits.clone(),
        );
        r.register(
            "gitops_pins",
            "Images pinned to a new digest in each [[gitops]] repository's pushed commits",
            m.gitops_pins.clone(),
        );
        r.register(
            "gitops_errors",
            "Error rows of each [[gitops]] repository, per cycle (the repository itself, a file or an image)",
            m.gitops_errors.clone(),
        );
        r.register(
            "last_successful_cycle_timestamp_seconds",
            "When the last cycle in which nothing failed or was rolled back ended (Unix time)",
            m.last_success.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            ..m
        }
    }

    /// Records a finished cycle: one check, each step's outcome (recovered steps included),
    /// rollbacks, the duration, and the time when it succeeded. Containers by status come from
    /// [`Metrics::set_containers`], since a cycle may look at only some containers.
    pub fn record_cycle(&self, report: &CycleReport, duration: Duration) {
        self.checks.inc();
        for result in report.recovered.iter().chain(&report.results) {
            self.updates
                .get_or_create(&outcome_labels(result.outcome))
                .inc();
            if result.outcome == StepOutcome::RolledBack {
                self.rollbacks.inc();
            }
        }
        for signature in report.containers.iter().filter_map(|r| r.signature) {
            self.signatures
                .get_or_create(&SignatureLabels {
                    result: signature.as_str(),
                })
                .inc();
        }
        self.cycle_duration.observe(duration.as_secs_f64());
        if report.succeeded() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            self.last_success.set(now.as_secs_f64());
        }
    }

    /// Records what a cycle's write-back did in each `[[gitops]]` repository.
    pub fn record_gitops(&self, reports: &[crate::gitops::run::RepoReport]) {
        for r in reports {
            let labels = RepoLabels {
                repo: r.repo.clone(),
            };
            let pushed = matches!(
                r.published,
                Some(crate::gitops::checkout::Published::Pushed { .. })
            );
            if pushed {
                self.gitops_commits.get_or_create(&labels).inc();
                self.gitops_pins
                    .get_or_create(&labels)
                    .inc_by(r.pins.len() as u64);
            }
            let errors = r
                .rows
                .iter()
                .filter(|row| row.status == Status::Error)
                .count();
            self.gitops_errors
                .get_or_create(&labels)
                .inc_by(errors as u64);
        }
    }

    /// Records a cycle that could not run at all (`Agent::cycle` returned an error).
    pub fn record_cycle_error(&self, duration: Duration) {
        self.checks.inc();
        self.cycle_errors.inc();
        self.cycle_duration.observe(duration.as_secs_f64());
    }

    /// Records a cycle that panicked: caught at the cycle boundary, logged, and abandoned.
    pub fn record_cycle_failed(&self, duration: Duration) {
        self.checks.inc();
        self.cycle_failed.inc();
        self.cycle_duration.observe(duration.as_secs_f64());
    }

    /// Adds `requests` sent to `registry` (`host[:port]`) and `errors` among its lookups.
    pub fn record_registry(&self, registry: &str, requests: u64, errors: u64) {
        let labels = RegistryLabels {
            registry: registry.to_string(),
        };
        self.registry_requests
            .get_or_create(&labels)
            .inc_by(requests);
        self.registry_errors.get_or_create(&labels).inc_by(errors);
    }

    /// Sets the containers-by-status gauges from the current rows.
    pub fn set_containers<'a>(&self, statuses: impl IntoIterator<Item = &'a Status>) {
        let mut counts = [0i64; STATUSES.len()];
        for status in statuses {
            if let Some(i) = STATUSES.iter().position(|s| s == status) {
                counts[i] += 1;
            }
        }
        for (status, count) in STATUSES.iter().zip(counts) {
            self.containers
                .get_or_create(&StatusLabels {
                    status: status.as_str(),
                })
                .set(count);
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

fn outcome_labels(outcome: StepOutcome) -> OutcomeLabels {
    OutcomeLabels {
        outcome: outcome.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::detect::CheckRow;
    use crate::report::StepResult;

    fn step(container: &str, outcome: StepOutcome) -> StepResult {
        StepResult {
            container: container.into(),
            image: "127.0.0.1:5000/app:latest".into(),
            from_digest: Some("sha256:aaaa".into()),
            to_digest: Some("sha256:bbbb".into()),
            outcome,
            detail: String::new(),
            notes: Default::default(),
        }
    }

    #[test]
    fn a_pushed_commit_counts_its_pins_and_error_rows_count_per_repository() {
        use crate::gitops::checkout::Published;
        use crate::gitops::plan::Pin;
        use crate::gitops::run::RepoReport;
        let m = Metrics::new();
        let pin = Pin {
            row: "a/compose.yaml#web".into(),
            image: "app:1".into(),
            old: None,
            new: "sha256:bbbb".into(),
            tag: None,
            link: None,
        };
        m.record_gitops(&[
            RepoReport {
                repo: "file:///srv/deploy.git (main)".into(),
                rows: vec![
                    row("a/compose.yaml#web", Status::UpdateAvailable),
                    row("b.yaml", Status::Error),
                ],
                published: Some(Published::Pushed {
                    commit: "0123456789abcdef".into(),
                    attempts: 1,
                }),
                diff: None,
                message: None,
                pins: vec![pin.clone(), pin],
            },
            RepoReport {
                repo: "ssh://git.lan/ops.git (main)".into(),
                rows: vec![],
                published: Some(Published::Unchanged),
                diff: None,
                message: None,
                pins: vec![],
            },
        ]);
        let text = m.encode().unwrap();
        for line in [
            "tidewatch_gitops_commits_total{repo=\"file:///srv/deploy.git (main)\"} 1",
            "tidewatch_gitops_pins_total{repo=\"file:///srv/deploy.git (main)\"} 2",
            "tidewatch_gitops_errors_total{repo=\"file:///srv/deploy.git (main)\"} 1",
            "tidewatch_gitops_errors_total{repo=\"ssh://git.lan/ops.git (main)\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert!(
            !text.contains("tidewatch_gitops_commits_total{repo=\"ssh"),
            "{text}"
        );
    }

    fn row(container: &str, status: Status) -> CheckRow {
        CheckRow {
            container: container.into(),
            image: "127.0.0.1:5000/app:latest".into(),
            current_digest: None,
            available_digest: None,
            status,
            detail: None,
            notes: Default::default(),
            signature: None,
        }
    }

    /// The value of the series starting with `series ` in `text`.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn every_series_is_named_before_the_first_cycle() {
        let text = Metrics::new().encode().unwrap();
        for name in [
            "tidewatch_checks_total",
            "tidewatch_cycle_errors_total",
            "tidewatch_cycle_failed_total",
            "tidewatch_updates_total{outcome=\"rolled_back\"}",
            "tidewatch_rollbacks_total",
            "tidewatch_cycle_duration_seconds_count",
            "tidewatch_containers{status=\"update_available\"}",
            "tidewatch_signature_checks_total{result=\"rejected\"}",
            "tidewatch_last_successful_cycle_timestamp_seconds",
        ] {
            assert_eq!(value(&text, name), Some(0.0), "{name} in\n{text}");
        }
    }

    #[test]
    fn signature_checks_are_counted_by_result() {
        let m = Metrics::new();
        let mut rejected = row("web", Status::Error);
        rejected.signature = Some(Signature::Rejected);
        let mut verified = row("api", Status::UpdateAvailable);
        verified.signature = Some(Signature::Verified);
        let report = CycleReport {
            containers: vec![
                rejected.clone(),
                verified,
                rejected,
                row("db", Status::UpToDate),
            ],
            ..CycleReport::default()
        };
        m.record_cycle(&report, Duration::from_secs(1));
        let text = m.encode().unwrap();
        let count = |result: &str| {
            value(
                &text,
                &format!("tidewatch_signature_checks_total{{result=\"{result}\"}}"),
            )
        };
        assert_eq!(count("rejected"), Some(2.0), "{text}");
        assert_eq!(count("verified"), Some(1.0), "{text}");
        assert_eq!(count("unverified"), Some(0.0), "{text}");
    }

    #[test]
    fn a_cycle_with_a_rollback_counts_outcomes_and_is_not_a_success() {
        let m = Metrics::new();
        let report = CycleReport {
            recovered: vec![step("db", StepOutcome::Updated)],
            results: vec![
                step("web", StepOutcome::Updated),
                step("api", StepOutcome::RolledBack),
                step("worker", StepOutcome::Skipped),
            ],
            ..CycleReport::default()
        };
        m.record_cycle(&report, Duration::from_millis(1500));
        let text = m.encode().unwrap();
        assert_eq!(value(&text, "tidewatch_checks_total"), Some(1.0));
        assert_eq!(
            value(&text, "tidewatch_updates_total{outcome=\"updated\"}"),
            Some(2.0)
        );
        assert_eq!(
            value(&text, "tidewatch_updates_total{outcome=\"rolled_back\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(&text, "tidewatch_updates_total{outcome=\"skipped\"}"),
            Some(1.0)
        );
        assert_eq!(value(&text, "tidewatch_rollbacks_total"), Some(1.0));
        assert_eq!(
            value(&text, "tidewatch_cycle_duration_seconds_sum"),
            Some(1.5)
        );
        assert_eq!(
            value(&text, "tidewatch_last_successful_cycle_timestamp_seconds"),
            Some(0.0)
        );
    }

    #[test]
    fn a_clean_cycle_sets_the_last_success_time() {
        let m = Metrics::new();
        m.record_cycle(&CycleReport::default(), Duration::from_secs(2));
        let text = m.encode().unwrap();
        let at = value(&text, "tidewatch_last_successful_cycle_timestamp_seconds").unwrap();
        assert!(at > 1.7e9, "{text}");
    }

    #[test]
    fn registry_traffic_adds_up_per_registry() {
        let m = Metrics::new();
        m.record_registry("ghcr.io", 3, 1);
        m.record_registry("ghcr.io", 2, 0);
        m.record_registry("127.0.0.1:5000", 4, 0);
        let text = m.encode().unwrap();
        assert_eq!(
            value(
                &text,
                "tidewatch_registry_requests_total{registry=\"ghcr.io\"}"
            ),
            Some(5.0)
        );
        assert_eq!(
            value(
                &text,
                "tidewatch_registry_errors_total{registry=\"ghcr.io\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                "tidewatch_registry_requests_total{registry=\"127.0.0.1:5000\"}"
            ),
            Some(4.0)
        );
    }

    #[test]
    fn containers_by_status_are_replaced_not_added() {
        let m = Metrics::new();
        let rows = [
            row("web", Status::UpdateAvailable),
            row("db", Status::UpToDate),
            row("tool", Status::UpToDate),
        ];
        m.set_containers(rows.iter().map(|r| &r.status));
        m.set_containers(rows[1..].iter().map(|r| &r.status));
        let text = m.encode().unwrap();
        assert_eq!(
            value(&text, "tidewatch_containers{status=\"up_to_date\"}"),
            Some(2.0)
        );
        assert_eq!(
            value(&text, "tidewatch_containers{status=\"update_available\"}"),
            Some(0.0)
        );
    }

    #[test]
    fn a_cycle_that_could_not_run_is_counted() {
        let m = Metrics::new();
        m.record_cycle_error(Duration::from_millis(10));
        let text = m.encode().unwrap();
        assert_eq!(value(&text, "tidewatch_checks_total"), Some(1.0));
        assert_eq!(value(&text, "tidewatch_cycle_errors_total"), Some(1.0));
    }
}
