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
