use super::*;

fn err(text: &str) -> String {
    Config::parse(text, "agent.toml")
        .expect_err("config should be refused")
        .to_string()
}

#[test]
fn empty_file_gives_defaults() {
    let c = Config::parse("", "agent.toml").unwrap();
    assert!(matches!(c.agent.trigger, Trigger::Interval(d) if d == Duration::from_secs(300)));
    assert_eq!(c.agent.state_dir, PathBuf::from("/var/lib/tidewatch"));
    assert_eq!(c.watch.scope, None);
    assert!(!c.watch.label_enable);
    assert_eq!(c.update.min_running, Duration::from_secs(10));
}

#[test]
fn full_example_parses() {
    let c = Config::parse(
        r#"
[agent]
schedule = "*/5 * * * *"
jitter = "30s"
state_dir = "/tmp/tw"
[docker]
host = "unix:///run/docker.sock"
[watch]
scope = "prod"
label_enable = true
[update]
min_running = "5s"
health_timeout = "1m"
keep_images = 3
[[registry]]
host = "127.0.0.1:5000"
insecure = true
[[service]]
name = "web"
depends_on = ["db"]
"#,
        "agent.toml",
    )
    .unwrap();
    assert!(matches!(c.agent.trigger, Trigger::Schedule(_)));
    assert_eq!(c.agent.jitter, Duration::from_secs(30));
    assert_eq!(c.watch.scope.as_deref(), Some("prod"));
    assert_eq!(c.registry("127.0.0.1:5000").unwrap().insecure, Some(true));
    assert_eq!(c.services["web"].depends_on, vec!["db".to_string()]);
    assert_eq!(c.update.keep_images, 3);
}

#[test]
fn six_field_cron_with_seconds_is_accepted() {
    let c = Config::parse("[agent]\nschedule = \"0 */5 * * * *\"\n", "agent.toml").unwrap();
    assert!(matches!(c.agent.trigger, Trigger::Schedule(_)));
}

#[test]
fn unknown_key_is_named_with_its_place() {
    let e = err("[agent]\ninterval = \"5m\"\nintervall = \"5m\"\n");
    assert!(e.starts_with("agent.toml:3:1:"), "{e}");
    assert!(e.contains("intervall"), "{e}");
}

#[test]
fn unknown_section_is_named() {
    let e = err("[agnet]\ninterval = \"5m\"\n");
    assert!(e.starts_with("agent.toml:1:"), "{e}");
    assert!(e.contains("agnet"), "{e}");
}

#[test]
fn bad_duration_points_at_the_value() {
    let e = err("[agent]\ninterval = \"5 parsecs\"\n");
    assert!(e.starts_with("agent.toml:2:12:"), "{e}");
    assert!(e.contains("bad duration"), "{e}");
}

#[test]
fn bad_cron_points_at_the_value() {
    let e = err("[agent]\nschedule = \"*/5 * * *\"\n");
    assert!(e.starts_with("agent.toml:2:12:"), "{e}");
    assert!(e.contains("bad cron expression"), "{e}");
}

#[test]
fn a_cron_list_with_an_empty_element_is_refused_instead_of_hanging_start_up() {
    // Found by fuzzing: each took 9 s to well over 20 s (release build) to be found never firing.
    for schedule in ["0 , * * *", "0 3 , * *", ", 3 * * *"] {
        let e = err(&format!(
            "[watch]\nwindow = {{ schedule = \"{schedule}\", length = \"2h\" }}\n"
        ));
        assert!(e.starts_with("agent.toml:2:23:"), "{e}");
        assert!(e.contains("empty element"), "{e}");
    }
    let e = err("[agent]\nschedule = \"1,,2 * * * *\"\n");
    assert!(e.starts_with("agent.toml:2:12:"), "{e}");
    assert!(parse_cron("0,30 3 * * 1,5").is_ok());
}

#[test]
fn seven_field_cron_is_refused() {
    let e = err("[agent]\nschedule = \"0 0 0 * * * 2030\"\n");
    assert!(e.contains("bad cron expression"), "{e}");
}

#[test]
fn interval_and_schedule_are_exclusive() {
    let e = err("[agent]\ninterval = \"5m\"\nschedule = \"*/5 * * * *\"\n");
    assert!(e.starts_with("agent.toml:3:12:"), "{e}");
    assert!(e.contains("exclusive"), "{e}");
}

#[test]
fn wrong_type_is_refused_with_place() {
    let e = err("[watch]\nlabel_enable = \"yes\"\n");
    assert!(e.starts_with("agent.toml:2:16:"), "{e}");
}

#[test]
fn registry_host_with_scheme_is_refused() {
    let e = err("[[registry]]\nhost = \"https://ghcr.io\"\n");
    assert!(e.starts_with("agent.toml:2:8:"), "{e}");
}

#[test]
fn missing_file_names_the_path() {
    let e = Config::load(Path::new("/nonexistent/agent.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/agent.toml"), "{e}");
}

#[test]
fn line_col_counts_characters() {
    assert_eq!(line_col("ab\ncé=x", 7), (2, 4));
    assert_eq!(line_col("", 0), (1, 1));
}

#[test]
fn password_file_is_read_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret-value\n").unwrap();
    let text = format!(
        "[[registry]]\nhost = \"ghcr.io\"\nusername = \"ci\"\npassword_file = \"{}\"\n",
        secret.display()
    );
    let c = Config::parse(&text, "agent.toml").unwrap();
    let login = c.registry("ghcr.io").unwrap().login.clone().unwrap();
    assert_eq!(login.username, "ci");
    assert_eq!(login.password.expose(), "s3cret-value");
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn inline_password_is_refused_with_its_place() {
    let e = err("[[registry]]\nhost = \"ghcr.io\"\nusername = \"ci\"\npassword = \"x\"\n");
    assert!(e.starts_with("agent.toml:4:12:"), "{e}");
    assert!(e.contains("password_file"), "{e}");
    assert!(!e.contains("\"x\""), "{e}");
}

#[test]
fn missing_password_file_is_named() {
    let e = err("[[registry]]\nhost = \"ghcr.io\"\nusername = \"ci\"\npassword_file = \"/nonexistent/pw\"\n");
    assert!(e.starts_with("agent.toml:4:17:"), "{e}");
    assert!(e.contains("/nonexistent/pw"), "{e}");
}

#[test]
fn username_without_password_is_refused() {
    let e = err("[[registry]]\nhost = \"ghcr.io\"\nusername = \"ci\"\n");
    assert!(e.starts_with("agent.toml:3:12:"), "{e}");
}

#[test]
fn unset_password_env_is_refused() {
    let e = err("[[registry]]\nhost = \"ghcr.io\"\nusername = \"ci\"\npassword_env = \"TIDEWATCH_TEST_UNSET_VAR\"\n");
    assert!(e.contains("TIDEWATCH_TEST_UNSET_VAR is not set"), "{e}");
}

#[test]
fn mirrors_and_concurrency_are_read() {
    let c = Config::parse(
        "[[registry]]\nhost = \"docker.io\"\nmirror = [\"127.0.0.1:5001\"]\nconcurrency = 2\n",
        "agent.toml",
    )
    .unwrap();
    let r = c.registry("docker.io").unwrap();
    assert_eq!(r.mirrors, vec!["127.0.0.1:5001".to_string()]);
    assert_eq!(r.concurrency, 2);
    assert_eq!(
        c.registry_or_default("ghcr.io").concurrency,
        DEFAULT_REGISTRY_CONCURRENCY
    );
}

#[test]
fn zero_concurrency_is_refused() {
    let e = err("[[registry]]\nhost = \"ghcr.io\"\nconcurrency = 0\n");
    assert!(e.starts_with("agent.toml:3:15:"), "{e}");
}

/// The shipped example, installed as /etc/tidewatch/agent.toml: it must load as it is, and
/// document every key the parser accepts (as a setting or a commented line `# key = ...`) in
/// its table's section. The accepted keys are read from the parser's own "unknown field"
/// error, so a key added to the parser and not to the example fails here.
#[test]
fn the_example_agent_toml_loads_and_documents_every_key() {
    let example = include_str!("../../agent.toml");
    Config::parse(example, "agent.toml").expect("the example agent.toml loads");

    // Accepted only to be refused with a pointer to password_file / password_env.
    let undocumented = ["password"];
    let tables = [
        "[agent]",
        "[docker]",
        "[watch]",
        "[update]",
        "[swarm]",
        "[api]",
        "[[registry]]",
        "[[service]]",
        "[[notify]]",
        "[[verify]]",
    ];
    for table in tables {
        let probe = format!("{table}\nnot_a_key = 1\n");
        let error = Config::parse(&probe, "probe.toml")
            .expect_err("an unknown key is refused")
            .to_string();
        let keys: Vec<&str> = error
            .split('`')
            .skip(3) // "...unknown field `not_a_key`, expected ..."
            .step_by(2)
            .collect();
        assert!(!keys.is_empty(), "no keys listed for {table}: {error}");
        let section = section_of(example, table);
        for key in keys.into_iter().filter(|k| !undocumented.contains(k)) {
            let documented = section.lines().any(|line| {
                let line = line.trim_start_matches('#').trim_start();
                line.starts_with(&format!("{key} =")) || line.starts_with(&format!("{key}="))
            });
            assert!(documented, "agent.toml does not document {table} {key}");
        }
    }
}

/// The lines of `text` from the header `table` (set or commented out) to the next header of
/// another table.
fn section_of<'a>(text: &'a str, table: &str) -> String {
    let header = |line: &'a str| {
        let line = line.trim_start_matches('#').trim();
        (line.starts_with('[') && line.ends_with(']')).then_some(line)
    };
    let mut inside = false;
    let mut out = String::new();
    for line in text.lines() {
        if let Some(h) = header(line) {
            inside = h == table;
            continue;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(!out.is_empty(), "agent.toml has no {table} section");
    out
}

/// Issue #13: values that passed validation and then overflowed a clock or a semaphore.
#[test]
fn durations_and_counts_beyond_sane_bounds_are_refused_with_their_place() {
    let cases = [
        (
            "[agent]\ninterval = \"500000000000years\"\n",
            "2:12",
            "interval",
        ),
        ("[agent]\njitter = \"2days\"\n", "2:10", "jitter"),
        (
            "[watch]\nwindow = { schedule = \"0 2 * * *\", length = \"300000years\" }\n",
            "2:45",
            "length",
        ),
        ("[watch]\nmin_age = \"2years\"\n", "2:11", "min_age"),
        (
            "[[service]]\nname = \"web\"\nmin_age = \"100000years\"\n",
            "3:11",
            "min_age",
        ),
        (
            "[update]\nhealth_timeout = \"1000years\"\n",
            "2:18",
            "health_timeout",
        ),
        ("[update]\nmin_running = \"25h\"\n", "2:15", "min_running"),
        ("[swarm]\ntimeout = \"300000years\"\n", "2:11", "timeout"),
        ("[swarm]\nmonitor = \"2days\"\n", "2:11", "monitor"),
        ("[swarm]\ndelay = \"2days\"\n", "2:9", "delay"),
        (
            "[swarm]\nparallelism = 9223372036854775808\n",
            "2:15",
            "parallelism",
        ),
        (
            "[[registry]]\nhost = \"ghcr.io\"\nconcurrency = 4611686018427387904\n",
            "3:15",
            "concurrency",
        ),
        (
            "[[registry]]\nhost = \"ghcr.io\"\nconcurrency = 65\n",
            "3:15",
            "concurrency",
        ),
    ];
    for (toml, place, key) in cases {
        let e = err(toml);
        assert!(
            e.starts_with(&format!("agent.toml:{place}: ")),
            "{toml:?} → {e}"
        );
        assert!(e.contains(key) && e.contains("at most"), "{toml:?} → {e}");
    }
}

#[test]
fn values_at_the_bounds_are_accepted() {
    let c = Config::parse(
        "[agent]\ninterval = \"1year\"\njitter = \"1day\"\n\
         [watch]\nmin_age = \"1year\"\nwindow = { schedule = \"0 2 * * *\", length = \"1year\" }\n\
         [update]\nhealth_timeout = \"24h\"\nmin_running = \"24h\"\n\
         [swarm]\ntimeout = \"24h\"\n\
         [[registry]]\nhost = \"ghcr.io\"\nconcurrency = 64\n",
        "agent.toml",
    )
    .unwrap();
    assert_eq!(c.update.health_timeout, Duration::from_secs(86_400));
    assert_eq!(c.registry("ghcr.io").unwrap().concurrency, 64);
}

#[test]
fn a_window_whose_cron_never_fires_is_refused_instead_of_meaning_always_open() {
    let e = err("[watch]\nwindow = { schedule = \"0 3 30 2 *\", length = \"1h\" }\n");
    assert!(e.starts_with("agent.toml:2:23: "), "{e}");
    assert!(e.contains("never fires"), "{e}");
    let e = err(
        "[[service]]\nname = \"db\"\nwindow = { schedule = \"0 0 31 4 *\", length = \"1h\" }\n",
    );
    assert!(e.starts_with("agent.toml:3:23: "), "{e}");
    let e = err("[agent]\nschedule = \"0 3 30 2 *\"\n");
    assert!(e.starts_with("agent.toml:2:12: "), "{e}");
    // Rare is not never: February 29th comes within the horizon.
    Config::parse(
        "[watch]\nwindow = { schedule = \"0 3 29 2 *\", length = \"1h\" }\n",
        "agent.toml",
    )
    .unwrap();
}

#[test]
fn tag_list_caps_are_read_per_registry_and_bounded() {
    let c = Config::parse(
        "[[registry]]\nhost = \"ghcr.io\"\nmax_tags = 500\nmax_tag_pages = 3\n",
        "agent.toml",
    )
    .unwrap();
    let r = c.registry("ghcr.io").unwrap();
    assert_eq!((r.max_tags, r.max_tag_pages), (500, 3));
    assert_eq!(r.max_track_candidates, 20);
    let unlisted = c.registry_or_default("docker.io");
    assert_eq!((unlisted.max_tags, unlisted.max_tag_pages), (10_000, 50));
    let e = err("[[registry]]\nhost = \"ghcr.io\"\nmax_tags = 0\n");
    assert!(
        e.starts_with("agent.toml:3:12: ") && e.contains("max_tags"),
        "{e}"
    );
    let e = err("[[registry]]\nhost = \"ghcr.io\"\nmax_track_candidates = 0\n");
    assert!(
        e.starts_with("agent.toml:3:24: ") && e.contains("1 to 1000"),
        "{e}"
    );
    let e = err("[[registry]]\nhost = \"ghcr.io\"\nmax_tag_pages = 100000\n");
    assert!(
        e.starts_with("agent.toml:3:17: ") && e.contains("1 to 10000"),
        "{e}"
    );
}

#[test]
fn service_hooks_are_argv_with_a_bounded_timeout_and_off_unless_enabled() {
    let c = Config::parse(
        "[update]\nlifecycle_hooks = true\n\n[[service]]\nname = \"db\"\n\
         hooks = { pre_update = [\"/bin/dump\", \"--all dbs\"], timeout = \"5m\" }\n",
        "agent.toml",
    )
    .unwrap();
    assert!(c.update.lifecycle_hooks);
    let hooks = &c.services["db"].hooks;
    assert_eq!(
        hooks.pre_update.as_deref(),
        Some(&["/bin/dump".to_string(), "--all dbs".to_string()][..])
    );
    assert_eq!(hooks.post_update, None);
    assert_eq!(hooks.timeout, Some(Duration::from_secs(300)));
    assert!(!Config::default().update.lifecycle_hooks, "off by default");

    let e = err("[[service]]\nname = \"db\"\nhooks = { post_update = [] }\n");
    assert!(e.starts_with("agent.toml:3:25:"), "{e}");
    assert!(e.contains("hooks.post_update needs a program"), "{e}");
    let e = err("[[service]]\nname = \"db\"\nhooks = { pre_check = [\"/x\"], timeout = \"2h\" }\n");
    assert!(e.starts_with("agent.toml:3:"), "{e}");
    assert!(
        e.contains("hooks.timeout") && e.contains("at most 1h"),
        "{e}"
    );
    let e = err("[[service]]\nname = \"db\"\nhooks = { pre_deploy = [\"/x\"] }\n");
    assert!(e.contains("pre_deploy"), "{e}");
}

/// A P-256 public key in cosign.pub's form, written to a temporary file.
fn cosign_pub(dir: &tempfile::TempDir) -> std::path::PathBuf {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    use base64::Engine as _;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let der = pair.public_key().as_der().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let path = dir.path().join("cosign.pub");
    std::fs::write(
        &path,
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n"),
    )
    .unwrap();
    path
}

#[test]
fn verify_rules_keep_their_order_and_the_first_match_wins() {
    let dir = tempfile::tempdir().unwrap();
    let key = cosign_pub(&dir);
    let c = Config::parse(
        &format!(
            "[[verify]]\nimages = [\"ghcr.io/acme/legacy\"]\nkey = {key:?}\nmode = \"warn\"\n\
             [[verify]]\nimages = [\"ghcr.io/acme/*\", \"registry.lan:5000/app\"]\nkey = {key:?}\n\
             [[verify]]\nimages = [\"registry.lan:5000/team/*\"]\nkey = {key:?}\n\
             signature_repository = \"registry.lan:5000/sigs/team\"\n"
        ),
        "agent.toml",
    )
    .unwrap();
    assert_eq!(c.verify.len(), 3);
    assert_eq!(c.verify[1].signature_repository, None);
    let elsewhere = c.verify[2].signature_repository.as_ref().map(|r| r.name());
    assert_eq!(elsewhere.as_deref(), Some("registry.lan:5000/sigs/team"));
    let rule = |name| rule_for(&c.verify, name).map(|r| (r.number, r.mode));
    assert_eq!(rule("ghcr.io/acme/legacy"), Some((1, VerifyMode::Warn)));
    assert_eq!(rule("ghcr.io/acme/api"), Some((2, VerifyMode::Enforce)));
    assert_eq!(
        rule("registry.lan:5000/app"),
        Some((2, VerifyMode::Enforce))
    );
    assert_eq!(rule("docker.io/library/nginx"), None);
    assert_eq!(
        c.verify[1].describe(),
        "verify rule 2 (ghcr.io/acme/*, registry.lan:5000/app)"
    );
}

#[test]
fn a_bad_verify_rule_is_refused_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let key = cosign_pub(&dir);
    let missing = dir.path().join("nope.pub");
    let not_a_key = dir.path().join("bad.pub");
    std::fs::write(&not_a_key, "hello").unwrap();
    let cases = [
        (
            format!("[[verify]]\nimages = [\"ghcr.io/a/*\"]\nkey = {missing:?}\n"),
            "agent.toml:3:7: key ",
        ),
        (
            format!("[[verify]]\nimages = [\"ghcr.io/a/*\"]\nkey = {not_a_key:?}\n"),
            "not a PEM public key",
        ),
        (
            "[[verify]]\nimages = [\"ghcr.io/a/*\"]\n".to_string(),
            "agent.toml:2:10: a [[verify]] rule needs key",
        ),
        (
            format!("[[verify]]\nimages = [\"nginx\"]\nkey = {key:?}\n"),
            "agent.toml:2:11: image pattern \"nginx\" needs its registry host first",
        ),
        (
            format!("[[verify]]\nimages = [\"ghcr.io/a/app:latest\"]\nkey = {key:?}\n"),
            "names a tag or digest",
        ),
        (
            format!("[[verify]]\nimages = []\nkey = {key:?}\n"),
            "agent.toml:2:10: images needs at least one pattern",
        ),
        (
            format!("[[verify]]\nimages = [\"ghcr.io/a/*\"]\nkey = {key:?}\nmode = \"audit\"\n"),
            "agent.toml:4:8: unknown mode \"audit\"",
        ),
        (
            format!("[[verify]]\nimages = [\"ghcr.io/a/*\"]\nkey = {key:?}\nidentity = \"me@x\"\n"),
            "key and identity are exclusive",
        ),
        (
            format!("[[verify]]\nimages = [\"ghcr.io/a/*\"]\nkey = {key:?}\ntlog = false\n"),
            "agent.toml:4:8: tlog is for keyless rules",
        ),
        (
            "[[verify]]\nimages = [\"ghcr.io/a/*\"]\nidentity = \"me@x\"\n".to_string(),
            "a keyless rule needs issuer",
        ),
        (
            "[[verify]]\nimages = [\"ghcr.io/a/*\"]\nidentity_regex = \"(\"\nissuer = \"i\"\n"
                .to_string(),
            "agent.toml:3:18: identity_regex:",
        ),
        (
            "[[verify]]\nimages = [\"ghcr.io/a/*\"]\nkeys = \"x\"\n".to_string(),
            "unknown field `keys`",
        ),
        (
            format!(
                "[[verify]]\nimages = [\"ghcr.io/a/*\", \"registry.lan:5000/a\"]\nkey = {key:?}\n\
                 signature_repository = \"ghcr.io/a/sigs\"\n"
            ),
            "agent.toml:4:24: signature_repository \"ghcr.io/a/sigs\" is on another registry than \
             image pattern \"registry.lan:5000/a\"",
        ),
        (
            format!(
                "[[verify]]\nimages = [\"ghcr.io/a/*\"]\nkey = {key:?}\nsignature_repository = \"ghcr.io/a/*\"\n"
            ),
            "must name one repository",
        ),
        (
            format!(
                "[[verify]]\nimages = [\"ghcr.io/a/*\"]\nkey = {key:?}\nsignature_repository = \"ghcr.io/a/s:v1\"\n"
            ),
            "names a tag or digest",
        ),
    ];
    for (text, expected) in cases {
        let e = err(&text);
        assert!(e.contains(expected), "{text}\n=> {e}\nwanted {expected}");
    }
}

#[test]
fn a_gitops_table_takes_its_defaults_and_matches_files_by_glob() {
    let c = Config::parse(
        r#"
[[gitops]]
repo = "file:///srv/git/deploy.git"
files = ["stacks/*/compose.yaml", "k8s/**/*.yaml"]
author_name = "tidewatch"
author_email = "tidewatch@example.org"
"#,
        "agent.toml",
    )
    .unwrap();
    let g = &c.gitops[0];
    assert_eq!(g.branch, "main");
    assert_eq!(g.message, DEFAULT_MESSAGE);
    assert!(matches!(g.auth, GitAuth::None));
    assert!(g.files.matches("stacks/web/compose.yaml"));
    assert!(!g.files.matches("stacks/web/old/compose.yaml"));
    assert!(g.files.matches("k8s/apps/web/deploy.yaml"));
    assert!(g.files.matches("k8s/top.yaml"));
    assert!(!g.files.matches("docs/compose.yaml"));
}

#[test]
fn a_gitops_token_is_read_at_start_up_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "glpat-s3cret\n").unwrap();
    let text = format!(
        r#"
[[gitops]]
repo = "https://git.lan/ops/deploy.git"
branch = "prod"
files = ["compose.yaml"]
username = "bot"
token_file = "{}"
author_name = "tidewatch"
author_email = "tw@git.lan"
message = "deploy: {{count}} pins"
"#,
        token.display()
    );
    let c = Config::parse(&text, "agent.toml").unwrap();
    let g = &c.gitops[0];
    match &g.auth {
        GitAuth::Token { username, token } => {
            assert_eq!(username, "bot");
            assert_eq!(token.expose(), "glpat-s3cret");
        }
        other => panic!("expected a token, got {other:?}"),
    }
    assert_eq!(g.describe(), "https://git.lan/ops/deploy.git (prod)");
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn gitops_tables_are_refused_with_file_line_col() {
    let base = "files = [\"a.yaml\"]\nauthor_name = \"t\"\nauthor_email = \"t@x\"\n";
    let cases = [
        (
            format!("[[gitops]]\nrepo = \"https://u:pw@h/r.git\"\n{base}"),
            "agent.toml:2:8: repo: a password is never written",
        ),
        (
            format!("[[gitops]]\nrepo = \"/r.git\"\nbranch = \"-x\"\n{base}"),
            "agent.toml:3:10: branch \"-x\"",
        ),
        (
            "[[gitops]]\nrepo = \"/r.git\"\nfiles = []\nauthor_name = \"t\"\nauthor_email = \"t@x\"\n"
                .to_string(),
            "agent.toml:3:9: files needs at least one glob",
        ),
        (
            "[[gitops]]\nrepo = \"/r.git\"\nfiles = [\"../x\"]\nauthor_name = \"t\"\nauthor_email = \"t@x\"\n"
                .to_string(),
            "agent.toml:3:10: files \"../x\"",
        ),
        (
            "[[gitops]]\nrepo = \"/r.git\"\nfiles = [\"a[\"]\nauthor_name = \"t\"\nauthor_email = \"t@x\"\n"
                .to_string(),
            "agent.toml:3:10: files \"a[\": unclosed character class",
        ),
        (
            "[[gitops]]\nrepo = \"/r.git\"\nfiles = [\"a\"]\nauthor_name = \"t\"\n".to_string(),
            "agent.toml:2:8: a [[gitops]] table needs author_email",
        ),
        (
            format!("[[gitops]]\nrepo = \"/r.git\"\nssh_key_file = \"/k\"\n{base}"),
            "agent.toml:3:16: ssh_key_file and known_hosts_file go together",
        ),
        (
            format!("[[gitops]]\nrepo = \"/r.git\"\nusername = \"bot\"\n{base}"),
            "agent.toml:3:12: username and token_file go together",
        ),
        (
            format!("[[gitops]]\nrepo = \"/r.git\"\nmessage = \"{{x}}\"\n{base}"),
            "agent.toml:3:11: message \"{x}\": unknown placeholder {x}",
        ),
        (
            format!("[[gitops]]\nrepo = \"/r.git\"\n{base}[[gitops]]\nrepo = \"/r.git\"\n{base}"),
            "agent.toml:7:8: [[gitops]] /r.git (main) is listed twice",
        ),
        (
            format!("[[gitops]]\nrepo = \"/r.git\"\npath = \"x\"\n{base}"),
            "agent.toml:3:1: unknown field `path`",
        ),
    ];
    for (text, expected) in cases {
        let e = err(&text);
        assert!(e.starts_with(expected), "{e}\nexpected: {expected}");
    }
}

#[test]
fn a_gitops_token_file_must_suit_the_repository_kind() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret").unwrap();
    let e = err(&format!(
        "[[gitops]]\nrepo = \"ssh://git@h/r.git\"\nfiles = [\"a\"]\nusername = \"bot\"\ntoken_file = \"{}\"\nauthor_name = \"t\"\nauthor_email = \"t@x\"\n",
        token.display()
    ));
    assert!(
        e.starts_with("agent.toml:5:14: token_file is for an https:// repo"),
        "{e}"
    );
    assert!(!e.contains("s3cret"));
}
