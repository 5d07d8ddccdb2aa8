use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::config::Config;
use chrono::TimeZone;

fn agent(text: &str) -> AgentConfig {
    Config::parse(text, "agent.toml").unwrap().agent
}

#[test]
fn interval_is_the_delay() {
    let a = agent("[agent]\ninterval = \"90s\"\n");
    assert_eq!(next_delay(&a, Local::now(), 0.5), Duration::from_secs(90));
}

#[test]
fn jitter_adds_up_to_its_length() {
    let a = agent("[agent]\ninterval = \"1m\"\njitter = \"20s\"\n");
    assert_eq!(next_delay(&a, Local::now(), 0.0), Duration::from_secs(60));
    assert_eq!(next_delay(&a, Local::now(), 0.5), Duration::from_secs(70));
    assert!(next_delay(&a, Local::now(), 0.999_999) < Duration::from_secs(80));
}

#[test]
fn cron_waits_until_the_next_tick() {
    let a = agent("[agent]\nschedule = \"*/5 * * * *\"\n");
    let now = Local.with_ymd_and_hms(2026, 3, 10, 12, 2, 30).unwrap();
    assert_eq!(next_delay(&a, now, 0.0), Duration::from_secs(150));
}

#[test]
fn a_huge_interval_and_jitter_saturate_instead_of_panicking() {
    // Validation refuses these; the arithmetic must not panic on them regardless.
    let mut a = agent("");
    a.trigger = Trigger::Interval(Duration::MAX);
    a.jitter = Duration::MAX;
    let delay = next_delay(&a, Local::now(), 0.5);
    assert_eq!(delay, Duration::MAX);
    let schedule = Schedule {
        agent: &a,
        wall: &Local::now,
    };
    let now = Instant::now();
    assert!(schedule.next_tick(now) > now);
}

#[test]
fn the_next_cycle_says_when_and_why_for_an_interval_and_a_schedule() {
    let at = Utc.with_ymd_and_hms(2026, 3, 10, 12, 5, 0).unwrap();
    let every = next_cycle(&agent("[agent]\ninterval = \"90s\"\n").trigger, at);
    assert_eq!(
        (every.at, every.reason.as_str(), every.reason_kind.as_str()),
        (at, "every 1m 30s (interval)", "interval")
    );
    let cron = next_cycle(&agent("[agent]\nschedule = \"*/5 * * * *\"\n").trigger, at);
    assert_eq!(
        (cron.reason.as_str(), cron.reason_kind.as_str()),
        ("cron \"*/5 * * * *\" (schedule)", "schedule")
    );
}

#[test]
fn the_next_cycle_on_the_wall_clock_is_to_the_second_and_saturates() {
    let now = Instant::now();
    let wall = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
    assert_eq!(
        wall_time(now + Duration::from_millis(90_400), now, wall),
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 1, 30).unwrap()
    );
    assert_eq!(wall_time(now, now + Duration::from_secs(5), wall), wall);
    let far = crate::clock::after_tokio(now, Duration::MAX);
    assert_eq!(
        wall_time(far, now, DateTime::<Utc>::MAX_UTC),
        DateTime::<Utc>::MAX_UTC.trunc_subsecs(0)
    );
}

#[tokio::test]
async fn a_panicking_cycle_is_caught_with_its_message_and_the_next_one_runs() {
    let n = 3;
    let panicking = async {
        let v: Vec<u8> = Vec::new();
        v[n]
    };
    let caught = guarded(panicking).await.unwrap_err();
    assert!(caught.contains("index out of bounds"), "{caught}");
    let formatted = guarded(async { panic!("cycle {n} broke") }).await;
    assert_eq!(formatted, Err("cycle 3 broke".to_string()));
    assert_eq!(guarded(async { true }).await, Ok(true));
}

#[test]
fn a_panicked_cycle_is_counted_apart_from_errors() {
    let metrics = Metrics::new();
    metrics.record_cycle_failed(Duration::from_millis(5));
    let text = metrics.encode().unwrap();
    assert!(text.contains("tidewatch_cycle_failed_total 1"), "{text}");
    assert!(text.contains("tidewatch_cycle_errors_total 0"), "{text}");
}

#[test]
fn random_fraction_is_in_range() {
    for _ in 0..100 {
        let f = random_fraction();
        assert!((0.0..1.0).contains(&f));
    }
}

// The loop, on tokio's paused clock: cycles that record when they ran and why, and a script
// of triggers and a shutdown at set times. Times are seconds since the test started.

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// What one of a [`Recorder`]'s cycles does besides taking its time.
#[derive(Debug, Clone, Copy)]
enum Act {
    /// Takes this long instead of the recorder's usual time.
    Takes(Duration),
    /// Panics when its time is up.
    Panics,
    /// Ends with a successor agent having taken over.
    HandsOver,
}

/// A panic a [`Recorder`] was told of: when, why the cycle ran, the message, how long it ran.
type Panicked = (Duration, String, String, Duration);

/// Cycles that each take `takes` of (paused) time and record when they started and why.
struct Recorder {
    start: Instant,
    takes: Duration,
    /// What the nth cycle (from 0) does, when not just taking `takes`.
    acts: Vec<(usize, Act)>,
    ran: Mutex<Vec<(Duration, String)>>,
    panicked: Mutex<Vec<Panicked>>,
    /// Whether the lock is held: each cycle checks that it is, each lock that it is not.
    locked: Arc<AtomicBool>,
}

/// A [`Recorder`]'s cycle lock.
struct Held(Arc<AtomicBool>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Recorder {
    fn new(takes: Duration) -> Recorder {
        Recorder {
            start: Instant::now(),
            takes,
            acts: Vec::new(),
            ran: Mutex::new(Vec::new()),
            panicked: Mutex::new(Vec::new()),
            locked: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The `nth` cycle (from 0) does `act`.
    fn with(mut self, nth: usize, act: Act) -> Recorder {
        self.acts.push((nth, act));
        self
    }

    fn ran(&self) -> Vec<(Duration, String)> {
        self.ran.lock().unwrap().clone()
    }

    fn panics(&self) -> Vec<Panicked> {
        self.panicked.lock().unwrap().clone()
    }
}

/// A reason in a word: `scheduled`, or the container a trigger names.
fn why(reason: &Reason) -> String {
    match reason {
        Reason::Scheduled => "scheduled".to_string(),
        Reason::Triggered(ApiTrigger::Cycle { container, .. }) => {
            container.clone().unwrap_or_else(|| "all".to_string())
        }
        Reason::Triggered(ApiTrigger::Images(images)) => images.join(","),
        Reason::Triggered(ApiTrigger::Rollback { container }) => format!("rollback {container}"),
        Reason::Triggered(ApiTrigger::Release { container }) => format!("release {container}"),
    }
}

impl Cycles for Recorder {
    type Lock = Held;

    async fn lock(&self, _: &mut Shutdown) -> Option<Held> {
        let was_held = self.locked.swap(true, Ordering::SeqCst);
        assert!(!was_held, "the lock was taken twice");
        Some(Held(self.locked.clone()))
    }

    async fn cycle(&self, reason: &Reason) -> CycleEnd {
        assert!(self.locked.load(Ordering::SeqCst), "a cycle ran unlocked");
        let nth = {
            let mut ran = self.ran.lock().unwrap();
            ran.push((self.start.elapsed(), why(reason)));
            ran.len() - 1
        };
        let act = self
            .acts
            .iter()
            .find(|(n, _)| *n == nth)
            .map(|(_, act)| *act);
        let takes = match act {
            Some(Act::Takes(takes)) => takes,
            _ => self.takes,
        };
        tokio::time::sleep(takes).await;
        match act {
            Some(Act::Panics) => panic!("cycle {nth} broke"),
            Some(Act::HandsOver) => CycleEnd::HandedOver,
            _ => CycleEnd::Finished,
        }
    }

    fn panicked(&self, reason: &Reason, panic: &str, elapsed: Duration) {
        let at = self.start.elapsed();
        let record = (at, why(reason), panic.to_string(), elapsed);
        self.panicked.lock().unwrap().push(record);
    }
}

/// What the script does at its time.
enum At {
    /// `POST /v1/update?container=NAME`.
    Trigger(&'static str),
    /// SIGTERM.
    Shutdown,
}

/// Runs the loop over `recorder` with `agent`'s schedule while `script` sends triggers and
/// shutdown at its times. The wall clock reads 2026-03-10 12:02:30 at the start and follows
/// the paused clock. Returns when the loop ended; panics if it ran on for a day.
async fn run_scripted(
    recorder: &Recorder,
    agent: &AgentConfig,
    script: Vec<(Duration, At)>,
) -> Duration {
    let start = recorder.start;
    let (triggers, received) = crate::api::trigger_channel();
    let (stop, shutdown) = crate::shutdown::channel();
    let script = tokio::spawn(async move {
        for (at, what) in script {
            tokio::time::sleep_until(start + at).await;
            match what {
                At::Trigger(name) => triggers
                    .try_send(ApiTrigger::Cycle {
                        container: Some(name.to_string()),
                        force: false,
                    })
                    .unwrap(),
                At::Shutdown => stop.trigger(),
            }
        }
        // Holds on to `stop`: the loop reads a dropped trigger as a shutdown.
        std::future::pending::<()>().await;
    });
    let wall_start = Local.with_ymd_and_hms(2026, 3, 10, 12, 2, 30).unwrap();
    let wall = move || wall_start + chrono::TimeDelta::from_std(start.elapsed()).unwrap();
    let schedule = Schedule { agent, wall: &wall };
    // A loop that should have ended fails the test instead of running on forever.
    let looped = run_loop(recorder, &schedule, shutdown, Some(received));
    tokio::time::timeout(secs(24 * 3600), looped)
        .await
        .expect("the loop still ran a day later");
    let ended = start.elapsed();
    script.abort();
    ended
}

/// `(seconds, why)` pairs as [`Recorder::ran`] gives them.
fn runs(list: &[(u64, &str)]) -> Vec<(Duration, String)> {
    list.iter()
        .map(|(at, why)| (secs(*at), why.to_string()))
        .collect()
}

fn every_minute() -> AgentConfig {
    agent("[agent]\ninterval = \"60s\"\n")
}

#[tokio::test(start_paused = true)]
async fn an_interval_runs_a_cycle_at_start_then_one_an_interval_after_each_cycle_ends() {
    let recorder = Recorder::new(secs(10));

    let ended = run_scripted(&recorder, &every_minute(), vec![(secs(250), At::Shutdown)]).await;

    assert_eq!(
        recorder.ran(),
        runs(&[
            (0, "scheduled"),
            (70, "scheduled"),
            (140, "scheduled"),
            (210, "scheduled"),
        ]),
        "each cycle takes 10 s; the interval is counted from its end"
    );
    assert_eq!(ended, secs(250));
}

#[tokio::test(start_paused = true)]
async fn jitter_adds_a_different_delay_of_up_to_its_length_to_each_scheduled_cycle() {
    let recorder = Recorder::new(secs(5));
    let jittered = agent("[agent]\ninterval = \"60s\"\njitter = \"30s\"\n");

    run_scripted(&recorder, &jittered, vec![(secs(3000), At::Shutdown)]).await;

    let starts: Vec<Duration> = recorder.ran().into_iter().map(|(at, _)| at).collect();
    let waits: Vec<Duration> = starts
        .windows(2)
        .map(|pair| pair[1] - (pair[0] + secs(5)))
        .collect();
    assert!(
        waits.len() >= 31,
        "32 to 47 cycles start in 3000 s: {starts:?}"
    );
    // Up to 90 s included: tokio's timer rounds a deadline up to its millisecond.
    assert!(
        waits
            .iter()
            .all(|wait| (secs(60)..=secs(90)).contains(wait)),
        "{waits:?}"
    );
    assert!(
        waits.iter().any(|wait| *wait != waits[0]),
        "the jitter differs from one cycle to the next: {waits:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cron_schedule_runs_a_cycle_at_the_first_tick_after_the_cycle_before_ends() {
    // Every five minutes; the wall clock reads 12:02:30 at the start. The second cycle takes
    // six minutes, past the 12:10 tick, which is not made up.
    let recorder = Recorder::new(secs(10)).with(1, Act::Takes(secs(360)));
    let cron = agent("[agent]\nschedule = \"*/5 * * * *\"\n");

    let ended = run_scripted(&recorder, &cron, vec![(secs(1100), At::Shutdown)]).await;

    assert_eq!(
        recorder.ran(),
        runs(&[
            (0, "scheduled"),    // 12:02:30, at start
            (150, "scheduled"),  // 12:05, until 12:11
            (750, "scheduled"),  // 12:15
            (1050, "scheduled"), // 12:20
        ])
    );
    assert_eq!(ended, secs(1100));
}

#[tokio::test(start_paused = true)]
async fn a_trigger_while_waiting_runs_a_cycle_at_once_and_leaves_the_schedule_alone() {
    let recorder = Recorder::new(secs(10));

    run_scripted(
        &recorder,
        &every_minute(),
        vec![(secs(30), At::Trigger("web")), (secs(155), At::Shutdown)],
    )
    .await;

    assert_eq!(
        recorder.ran(),
        runs(&[
            (0, "scheduled"),
            (30, "web"),
            (70, "scheduled"),
            (140, "scheduled"),
        ]),
        "the tick stays 60 s after the end of the scheduled cycle at 0"
    );
}

#[tokio::test(start_paused = true)]
async fn a_tick_that_passes_during_a_triggered_cycle_runs_its_cycle_right_after() {
    let recorder = Recorder::new(secs(10));

    run_scripted(
        &recorder,
        &every_minute(),
        vec![(secs(65), At::Trigger("web")), (secs(150), At::Shutdown)],
    )
    .await;

    assert_eq!(
        recorder.ran(),
        runs(&[
            (0, "scheduled"),
            (65, "web"),
            (75, "scheduled"), // due at 70
            (145, "scheduled"),
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn triggers_that_arrive_during_a_cycle_are_queued_and_each_runs_its_own_cycle_in_order() {
    let recorder = Recorder::new(secs(10));
    let hourly = agent("[agent]\ninterval = \"1h\"\n");

    run_scripted(
        &recorder,
        &hourly,
        vec![
            (secs(2), At::Trigger("web")),
            (secs(3), At::Trigger("db")),
            (secs(4), At::Trigger("web")),
            (secs(100), At::Shutdown),
        ],
    )
    .await;

    assert_eq!(
        recorder.ran(),
        runs(&[(0, "scheduled"), (10, "web"), (20, "db"), (30, "web")]),
        "not merged, not even the two alike"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_cycle_is_reported_and_the_loop_goes_on_with_its_schedule() {
    // The scheduled cycle at 70 and the triggered one at 100 panic at their ends.
    let recorder = Recorder::new(secs(10))
        .with(1, Act::Panics)
        .with(2, Act::Panics);

    run_scripted(
        &recorder,
        &every_minute(),
        vec![(secs(100), At::Trigger("web")), (secs(155), At::Shutdown)],
    )
    .await;

    assert_eq!(
        recorder.ran(),
        runs(&[
            (0, "scheduled"),
            (70, "scheduled"),
            (100, "web"),
            (140, "scheduled"),
        ]),
        "the tick after a panicked scheduled cycle is counted from its end"
    );
    assert_eq!(
        recorder.panics(),
        [
            (
                secs(80),
                "scheduled".to_string(),
                "cycle 1 broke".to_string(),
                secs(10)
            ),
            (
                secs(110),
                "web".to_string(),
                "cycle 2 broke".to_string(),
                secs(10)
            ),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_waiting_ends_the_loop_at_once() {
    let recorder = Recorder::new(secs(10));
    let hourly = agent("[agent]\ninterval = \"1h\"\n");

    let ended = run_scripted(&recorder, &hourly, vec![(secs(100), At::Shutdown)]).await;

    assert_eq!(ended, secs(100));
    assert_eq!(recorder.ran(), runs(&[(0, "scheduled")]));
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_a_cycle_lets_it_finish_and_a_queued_trigger_is_not_run() {
    let recorder = Recorder::new(secs(10));

    let ended = run_scripted(
        &recorder,
        &every_minute(),
        vec![(secs(3), At::Trigger("web")), (secs(5), At::Shutdown)],
    )
    .await;

    assert_eq!(ended, secs(10));
    assert_eq!(recorder.ran(), runs(&[(0, "scheduled")]));
}

#[tokio::test(start_paused = true)]
async fn a_handover_ends_the_loop_when_its_cycle_ends_without_a_shutdown() {
    let recorder = Recorder::new(secs(10)).with(1, Act::HandsOver);

    // No shutdown: the script holds it back for good.
    let ended = run_scripted(
        &recorder,
        &every_minute(),
        vec![(secs(75), At::Trigger("web"))],
    )
    .await;

    assert_eq!(ended, secs(80));
    assert_eq!(
        recorder.ran(),
        runs(&[(0, "scheduled"), (70, "scheduled")]),
        "the trigger queued during the handover is left to the successor"
    );
}

#[tokio::test(start_paused = true)]
async fn the_cycle_lock_is_waited_for_while_another_process_holds_it_and_shutdown_ends_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let (stop, mut shutdown) = crate::shutdown::channel();
    let manual = CycleLock::acquire(dir.path(), Wait::NoWait).unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        drop(manual);
    });

    let taken = lock(dir.path(), &mut shutdown).await;

    assert!(taken.is_some());
    assert_eq!(start.elapsed(), secs(3), "tried again each second");

    tokio::spawn(async move {
        tokio::time::sleep(secs(10)).await;
        stop.trigger();
    });

    let waited = lock(dir.path(), &mut shutdown).await;

    assert!(waited.is_none(), "shutdown while the lock is held");
    assert_eq!(start.elapsed(), secs(13));
}
