//! Properties of [`Config::parse`] on generated text: arbitrary strings, and TOML built from the
//! keys the parser knows with arbitrary or plausible values. Whatever the text, parsing returns,
//! and a refusal names `agent.toml:LINE:COL` inside the text.

use std::path::Path;

use proptest::prelude::*;
use toml::{Table, Value};

use super::*;

/// The refusal of `text`, if any, names the file and a place inside the text.
fn check_located(text: &str, result: &Result<Config, ConfigError>) -> Result<(), TestCaseError> {
    let Err(error) = result else {
        return Ok(());
    };
    let ConfigError::Invalid {
        file,
        line,
        col,
        message,
    } = error
    else {
        return Err(TestCaseError::fail(format!(
            "parsing text gave a read error: {error}"
        )));
    };
    prop_assert_eq!(file, "agent.toml");
    let lines: Vec<&str> = text.split('\n').collect();
    prop_assert!(
        (1..=lines.len()).contains(line),
        "line {} of {}: {}",
        line,
        lines.len(),
        error
    );
    prop_assert!(
        (1..=lines[line - 1].chars().count() + 1).contains(col),
        "col {} of line {:?}: {}",
        col,
        lines[line - 1],
        error
    );
    prop_assert!(!message.is_empty());
    let prefix = format!("agent.toml:{line}:{col}: ");
    prop_assert!(error.to_string().starts_with(&prefix), "{}", error);
    Ok(())
}

/// Text that is TOML-shaped more often than arbitrary strings are.
fn toml_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\[\\]a-z_=\"'0-9 .\n#:/*,{}+-]{0,200}",
        "(\\[{1,2}(agent|docker|api|watch|update|swarm|registry|service|notify)\\]{1,2}\n([a-z_]{1,12} = (\"[a-z0-9 */:.]{0,12}\"|[0-9]{1,4}|true|\\[\\])\n){0,4}){1,4}",
    ]
}

/// A TOML value of any type, a few levels deep.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<String>().prop_map(Value::String),
        "[a-z0-9 :/.*-]{0,16}".prop_map(Value::String),
        any::<i64>().prop_map(Value::Integer),
        (-3i64..70_000).prop_map(Value::Integer),
        any::<f64>().prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Table(m.into_iter().collect())),
        ]
    })
}

/// What a key holds, for values that are plausible more often than arbitrary ones are.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Duration,
    Cron,
    Path,
    Bool,
    Count,
    Text,
    Host,
    DockerHost,
    Listen,
    Policy,
    Url,
    Events,
    Mailbox,
    Mailboxes,
    Notifier,
    SwarmOrder,
    FailureAction,
    Window,
    Hosts,
    Names,
}

fn string(pattern: &'static str) -> BoxedStrategy<Value> {
    pattern.prop_map(Value::String).boxed()
}

fn one_of(words: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop::sample::select(words)
        .prop_map(|w| Value::String(w.to_string()))
        .boxed()
}

/// A plausible value of `kind`; `dir` holds files the paths may name.
fn plausible(kind: Kind, dir: &Path) -> BoxedStrategy<Value> {
    match kind {
        Kind::Duration => prop_oneof![
            string("[0-9]{1,6}(ns|us|ms|s|m|h|d|w|M|y)"),
            string("[0-9]{1,3}m [0-9]{1,2}s"),
            string("[0-9a-z ]{0,12}"),
        ]
        .boxed(),
        Kind::Cron => prop_oneof![
            one_of(&[
                "*/5 * * * *",
                "0 3 * * *",
                "0 */5 * * * *",
                "0 3 30 2 *",
                "0 4 * * MON-FRI",
                "@daily",
                "* * * * * * *",
            ]),
            string("([0-9*/,?LW#-]{1,5} ){4,6}[0-9*/,-]{1,5}"),
            string("(([0-9]{1,2}|\\*)(/[0-9]{1,2})? ){4}(MON|JAN|SUN-SAT|[0-7])"),
        ]
        .boxed(),
        Kind::Path => {
            let files: Vec<String> = ["secret", "short", "url", "missing", ""]
                .iter()
                .map(|f| dir.join(f).display().to_string())
                .collect();
            prop_oneof![
                prop::sample::select(files).prop_map(Value::String),
                one_of(&["", "/", "/nonexistent/file"]),
            ]
            .boxed()
        }
        Kind::Bool => any::<bool>().prop_map(Value::Boolean).boxed(),
        Kind::Count => prop_oneof![
            (0i64..4).prop_map(Value::Integer),
            (1i64..2_000_000).prop_map(Value::Integer),
            any::<i64>().prop_map(Value::Integer),
        ]
        .boxed(),
        Kind::Text => string("[a-zA-Z0-9_./ -]{0,12}"),
        Kind::Host => prop_oneof![
            one_of(&["ghcr.io", "127.0.0.1:5000", "docker.io", " ", "https://ghcr.io"]),
            string("[a-z0-9.-]{1,16}(:[0-9]{1,5})?(/[a-z]{1,4})?"),
        ]
        .boxed(),
        Kind::DockerHost => string("(unix|tcp|http|https|ssh)://[a-z0-9./:\\[\\]-]{0,24}"),
        Kind::Listen => prop_oneof![
            string("(127\\.0\\.0\\.1|\\[::1\\]|0\\.0\\.0\\.0|10\\.0\\.0\\.[0-9]):[0-9]{1,5}"),
            string("[a-z0-9.:\\[\\]]{0,20}"),
        ]
        .boxed(),
        Kind::Policy => string(" ?(update|notify|ignore|UPDATE|Notify|other) ?"),
        Kind::Url => string(
            "(https?|smtp|smtps|smtp\\+starttls|ftp)://([a-z]{1,5}(:[a-z]{1,5})?@)?[a-z0-9.-]{0,15}(:[0-9]{1,6})?(/[a-z]{0,5})?",
        ),
        Kind::Events => prop::collection::vec(
            prop_oneof![
                one_of(&["update_available", "updated", "rolled_back", "failed"]),
                string("[a-z_]{0,10}"),
            ],
            0..5,
        )
        .prop_map(Value::Array)
        .boxed(),
        Kind::Mailbox => string("([A-Z][a-z]{0,5} )?<?[a-z]{1,5}@[a-z]{1,5}\\.[a-z]{2,3}>?"),
        Kind::Mailboxes => prop::collection::vec(plausible(Kind::Mailbox, dir), 0..3)
            .prop_map(Value::Array)
            .boxed(),
        Kind::Notifier => one_of(&["webhook", "slack", "discord", "ntfy", "gotify", "email", "irc"]),
        Kind::SwarmOrder => one_of(&["start-first", "stop-first", " stop-first ", "random"]),
        Kind::FailureAction => one_of(&["rollback", "pause", "continue", "explode"]),
        Kind::Window => table(
            &[("schedule", Kind::Cron), ("length", Kind::Duration)],
            dir,
        )
        .prop_map(Value::Table)
        .boxed(),
        Kind::Hosts => prop::collection::vec(plausible(Kind::Host, dir), 0..3)
            .prop_map(Value::Array)
            .boxed(),
        Kind::Names => prop::collection::vec(string("[a-z/]{0,6}"), 0..3)
            .prop_map(Value::Array)
            .boxed(),
    }
}

/// A value for a key of `kind`: plausible mostly, of any type sometimes.
fn value(kind: Kind, dir: &Path) -> BoxedStrategy<Value> {
    prop_oneof![3 => plausible(kind, dir), 1 => any_value()].boxed()
}

/// A table with some of `keys`, and now and then one the parser does not know.
fn table(keys: &[(&'static str, Kind)], dir: &Path) -> BoxedStrategy<Table> {
    let entries: Vec<BoxedStrategy<Option<(String, Value)>>> = keys
        .iter()
        .map(|&(key, kind)| {
            prop::option::weighted(
                0.4,
                value(kind, dir).prop_map(move |v| (key.to_string(), v)),
            )
            .boxed()
        })
        .collect();
    let unknown = prop::option::weighted(0.05, any_value().prop_map(|v| ("bogus".to_string(), v)));
    (entries, unknown)
        .prop_map(|(entries, unknown)| entries.into_iter().chain([unknown]).flatten().collect())
        .boxed()
}

/// A whole file built from the known sections and keys.
fn config_table(dir: &Path) -> BoxedStrategy<Table> {
    use Kind as K;
    let section = |keys: &[(&'static str, Kind)]| prop::option::weighted(0.5, table(keys, dir));
    let sections = |keys: &[(&'static str, Kind)]| prop::collection::vec(table(keys, dir), 0..3);
    (
        section(&[
            ("interval", K::Duration),
            ("schedule", K::Cron),
            ("jitter", K::Duration),
            ("state_dir", K::Text),
        ]),
        section(&[
            ("host", K::DockerHost),
            ("tls_ca", K::Path),
            ("tls_cert", K::Path),
            ("tls_key", K::Path),
            ("insecure", K::Bool),
        ]),
        section(&[
            ("listen", K::Listen),
            ("token_file", K::Path),
            ("hook_secret_file", K::Path),
            ("public_read", K::Bool),
            ("header_read_timeout", K::Duration),
            ("max_connections", K::Count),
            ("allowed_hosts", K::Hosts),
        ]),
        section(&[
            ("scope", K::Text),
            ("label_enable", K::Bool),
            ("policy", K::Policy),
            ("window", K::Window),
            ("min_age", K::Duration),
            ("include_stopped", K::Bool),
        ]),
        section(&[
            ("min_running", K::Duration),
            ("health_timeout", K::Duration),
            ("keep_images", K::Count),
            ("self_update", K::Bool),
        ]),
        section(&[
            ("order", K::SwarmOrder),
            ("failure_action", K::FailureAction),
            ("monitor", K::Duration),
            ("parallelism", K::Count),
            ("delay", K::Duration),
            ("timeout", K::Duration),
        ]),
        sections(&[
            ("host", K::Host),
            ("insecure", K::Bool),
            ("username", K::Text),
            ("password_file", K::Path),
            ("password_env", K::Text),
            ("password", K::Text),
            ("ca_file", K::Path),
            ("mirror", K::Hosts),
            ("concurrency", K::Count),
            ("rate_limit_reserve", K::Count),
            ("max_tags", K::Count),
            ("max_tag_pages", K::Count),
            ("max_track_candidates", K::Count),
        ]),
        sections(&[
            ("name", K::Text),
            ("depends_on", K::Names),
            ("policy", K::Policy),
            ("window", K::Window),
            ("min_age", K::Duration),
        ]),
        sections(&[
            ("kind", K::Notifier),
            ("url", K::Url),
            ("url_file", K::Path),
            ("events", K::Events),
            ("token_file", K::Path),
            ("from", K::Mailbox),
            ("to", K::Mailboxes),
            ("username", K::Text),
            ("password_file", K::Path),
        ]),
    )
        .prop_map(
            |(agent, docker, api, watch, update, swarm, registry, service, notify)| {
                let mut file = Table::new();
                for (name, section) in [
                    ("agent", agent),
                    ("docker", docker),
                    ("api", api),
                    ("watch", watch),
                    ("update", update),
                    ("swarm", swarm),
                ] {
                    if let Some(section) = section {
                        file.insert(name.to_string(), Value::Table(section));
                    }
                }
                for (name, tables) in [
                    ("registry", registry),
                    ("service", service),
                    ("notify", notify),
                ] {
                    if !tables.is_empty() {
                        let tables = tables.into_iter().map(Value::Table).collect();
                        file.insert(name.to_string(), Value::Array(tables));
                    }
                }
                file
            },
        )
        .boxed()
}

/// Files the generated paths name: a good secret, a short one, a URL.
fn secret_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, content) in [
        ("secret", "s3cret-0123456789abcdef\n"),
        ("short", "hunter2\n"),
        ("url", "https://hooks.example.com/T0/B0/x\n"),
    ] {
        std::fs::write(dir.path().join(name), content).expect("a secret file");
    }
    dir
}

proptest! {
    #[test]
    fn arbitrary_text_is_parsed_or_refused_with_its_place(text in toml_like()) {
        let result = Config::parse(&text, "agent.toml");
        check_located(&text, &result)?;
    }
}

#[test]
fn toml_of_the_known_keys_is_parsed_or_refused_with_its_place() {
    let dir = secret_dir();
    proptest!(|(file in config_table(dir.path()))| {
        // Not every generated table is TOML (a float NaN is, a key of one's own is not).
        let Ok(text) = toml::to_string(&file) else {
            return Ok(());
        };
        let result = Config::parse(&text, "agent.toml");
        check_located(&text, &result)?;
    });
}

/// A configuration made of valid values only, as the test knows them.
#[derive(Debug, Clone)]
struct Model {
    interval: Option<Duration>,
    jitter: Duration,
    scope: Option<String>,
    policy: Policy,
    min_age: Duration,
    keep_images: usize,
    min_running: Duration,
    registries: BTreeMap<String, (usize, usize, Vec<String>)>,
    services: BTreeMap<String, (Vec<String>, Policy)>,
    swarm_parallelism: u64,
    swarm_timeout: Duration,
}

fn duration_up_to(max: Duration) -> impl Strategy<Value = Duration> {
    (0..=max.as_secs(), 0u32..1000).prop_map(move |(s, ms)| {
        (Duration::from_secs(s) + Duration::from_millis(u64::from(ms))).min(max)
    })
}

fn policy() -> impl Strategy<Value = Policy> {
    prop::sample::select(vec![Policy::Update, Policy::Notify, Policy::Ignore])
}

fn model() -> impl Strategy<Value = Model> {
    let host = "[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){0,2}(:[0-9]{1,5})?";
    (
        prop::option::of(duration_up_to(MAX_LONG_DURATION).prop_filter("zero", |d| !d.is_zero())),
        duration_up_to(MAX_SHORT_DURATION),
        prop::option::of("[a-z0-9-]{1,10}"),
        policy(),
        duration_up_to(MAX_LONG_DURATION),
        0usize..10,
        duration_up_to(MAX_SHORT_DURATION),
        prop::collection::btree_map(
            host,
            (
                1..=MAX_REGISTRY_CONCURRENCY,
                1..=MAX_MAX_TAGS,
                prop::collection::vec(host, 0..3),
            ),
            0..4,
        ),
        prop::collection::btree_map(
            "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,15}",
            (prop::collection::vec("[a-z]{1,8}", 0..3), policy()),
            0..4,
        ),
        0u64..=1_000_000,
        duration_up_to(MAX_SHORT_DURATION).prop_filter("zero", |d| !d.is_zero()),
    )
        .prop_map(
            |(
                interval,
                jitter,
                scope,
                policy,
                min_age,
                keep_images,
                min_running,
                registries,
                services,
                swarm_parallelism,
                swarm_timeout,
            )| Model {
                interval,
                jitter,
                scope,
                policy,
                min_age,
                keep_images,
                min_running,
                registries,
                services,
                swarm_parallelism,
                swarm_timeout,
            },
        )
}

fn policy_name(p: Policy) -> &'static str {
    match p {
        Policy::Update => "update",
        Policy::Notify => "notify",
        Policy::Ignore => "ignore",
    }
}

/// The model as agent.toml, durations written the way humantime prints them.
fn model_toml(m: &Model) -> String {
    let d = |d: Duration| Value::String(humantime::format_duration(d).to_string());
    let mut agent = Table::new();
    if let Some(interval) = m.interval {
        agent.insert("interval".into(), d(interval));
    }
    agent.insert("jitter".into(), d(m.jitter));
    let mut watch = Table::new();
    if let Some(scope) = &m.scope {
        watch.insert("scope".into(), Value::String(scope.clone()));
    }
    watch.insert("policy".into(), Value::String(policy_name(m.policy).into()));
    watch.insert("min_age".into(), d(m.min_age));
    let mut update = Table::new();
    update.insert("keep_images".into(), Value::Integer(m.keep_images as i64));
    update.insert("min_running".into(), d(m.min_running));
    let mut swarm = Table::new();
    swarm.insert(
        "parallelism".into(),
        Value::Integer(m.swarm_parallelism as i64),
    );
    swarm.insert("timeout".into(), d(m.swarm_timeout));
    let registries = m
        .registries
        .iter()
        .map(|(host, (concurrency, max_tags, mirrors))| {
            let mut t = Table::new();
            t.insert("host".into(), Value::String(host.clone()));
            t.insert("concurrency".into(), Value::Integer(*concurrency as i64));
            t.insert("max_tags".into(), Value::Integer(*max_tags as i64));
            let mirrors = mirrors.iter().cloned().map(Value::String).collect();
            t.insert("mirror".into(), Value::Array(mirrors));
            Value::Table(t)
        })
        .collect();
    let services = m
        .services
        .iter()
        .map(|(name, (depends_on, policy))| {
            let mut t = Table::new();
            t.insert("name".into(), Value::String(name.clone()));
            let deps = depends_on.iter().cloned().map(Value::String).collect();
            t.insert("depends_on".into(), Value::Array(deps));
            t.insert("policy".into(), Value::String(policy_name(*policy).into()));
            Value::Table(t)
        })
        .collect();
    let mut file = Table::new();
    file.insert("agent".into(), Value::Table(agent));
    file.insert("watch".into(), Value::Table(watch));
    file.insert("update".into(), Value::Table(update));
    file.insert("swarm".into(), Value::Table(swarm));
    file.insert("registry".into(), Value::Array(registries));
    file.insert("service".into(), Value::Array(services));
    toml::to_string(&file).expect("the model is TOML")
}

proptest! {
    #[test]
    fn a_valid_configuration_reads_back_as_written(m in model()) {
        let text = model_toml(&m);
        let c = Config::parse(&text, "agent.toml").map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let interval = match c.agent.trigger {
            Trigger::Interval(d) => d,
            Trigger::Schedule(_) => return Err(TestCaseError::fail("a schedule from an interval")),
        };
        prop_assert_eq!(interval, m.interval.unwrap_or(Duration::from_secs(300)));
        prop_assert_eq!(c.agent.jitter, m.jitter);
        prop_assert_eq!(&c.watch.scope, &m.scope);
        prop_assert_eq!(c.watch.policy, m.policy);
        prop_assert_eq!(c.watch.min_age, m.min_age);
        prop_assert_eq!(c.update.keep_images, m.keep_images);
        prop_assert_eq!(c.update.min_running, m.min_running);
        prop_assert_eq!(c.swarm.parallelism, m.swarm_parallelism);
        prop_assert_eq!(c.swarm.timeout, m.swarm_timeout);
        prop_assert_eq!(c.registries.len(), m.registries.len());
        for (host, (concurrency, max_tags, mirrors)) in &m.registries {
            let r = c.registry(host).ok_or_else(|| TestCaseError::fail(format!("no registry {host}")))?;
            prop_assert_eq!(r.concurrency, *concurrency);
            prop_assert_eq!(r.max_tags, *max_tags);
            prop_assert_eq!(&r.mirrors, mirrors);
            prop_assert!(r.login.is_none());
        }
        prop_assert_eq!(c.services.len(), m.services.len());
        for (name, (depends_on, policy)) in &m.services {
            let s = &c.services[name];
            prop_assert_eq!(&s.depends_on, depends_on);
            prop_assert_eq!(s.policy, Some(*policy));
        }
    }
}
