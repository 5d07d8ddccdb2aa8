//! A remote engine over TLS (`[docker] host = "tcp://..."` with `tls_ca`, `tls_cert`,
//! `tls_key`, or `DOCKER_HOST` + `DOCKER_TLS_VERIFY` + `DOCKER_CERT_PATH`), against the test
//! lane's `dockerd --tlsverify`: check and update go through it, and a certificate the engine
//! does not pass is a clear failure. The `lane2_` tests need that lane (see
//! [`TlsEngine::require`]); the configuration rules need no engine.

use std::ffi::OsString;
use std::fs;

use crate::support::{
    docker, push, scratch_dir, tag, tidewatch, Agent, Outcome, Registry, Status, TestBed, TestCa,
    TlsEngine,
};

/// What `tidewatch::engine` logs at debug level once connected over TLS, for `host`.
fn connected_over_tls(host: &str) -> String {
    format!("connected to the engine host={host}")
}

/// Runs the bed's app as "web" on v1, pushes v2, and has `agent` (set up for this bed, with a
/// short health gate) check and update it: update_available on v2, then updated to v2, and a
/// new container on the new image. Every run must have connected over TLS to `engine`.
fn check_then_update(bed: &TestBed, registry: &Registry, agent: &Agent, engine: &TlsEngine) {
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    let v1 = push(&image);
    bed.run("web", &image, &[]);
    let old_container = bed.container_id("web");
    publish_from_elsewhere(bed, &image, "2");
    let v2 = registry.manifest_digest("app", "stable");
    assert_ne!(v1, v2, "v2 must be a new digest");
    let over_tls = |outcome: &Outcome| {
        let line = outcome
            .stderr
            .lines()
            .find(|line| line.contains(&connected_over_tls(engine.host())))
            .unwrap_or_else(|| panic!("no connection to {} logged; {outcome:#?}", engine.host()));
        assert!(line.contains("tls=true"), "not over TLS: {line}");
    };

    let check = agent.check(&[]);
    check.assert_exit(0);
    over_tls(&check.outcome);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpdateAvailable, "{check}");
    assert_eq!(row.current_digest.as_deref(), Some(v1.as_str()), "{check}");
    assert_eq!(
        row.available_digest.as_deref(),
        Some(v2.as_str()),
        "{check}"
    );

    let update = agent.update(&[]);
    assert_eq!(update.outcome.code, 0, "{update}");
    over_tls(&update.outcome);
    let result = update
        .result("web")
        .unwrap_or_else(|| panic!("no step for web; {update}"));
    assert_eq!(result.outcome, "updated", "{update}");
    assert_eq!(result.to_digest.as_deref(), Some(v2.as_str()), "{update}");
    assert_ne!(
        bed.container_id("web"),
        old_container,
        "web was not recreated"
    );
    assert!(bed.is_running("web"), "the new web is not running");

    let check = agent.check(&[]);
    check.assert_exit(0);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpToDate, "{check}");
    assert_eq!(row.current_digest.as_deref(), Some(v2.as_str()), "{check}");
}

/// Builds and pushes the app's `version` as `image`, then leaves the engine as a server's is when
/// CI pushed from elsewhere: `image` names the image it named before, and the new one is gone.
/// Another name holds the previous image meanwhile: the containerd image store (lane 2's)
/// deletes an image whose last name moves away, even one a container runs.
fn publish_from_elsewhere(bed: &TestBed, image: &str, version: &str) {
    let keep = format!("tidewatch-test-keep/{}:before-{version}", bed.id());
    tag(image, &keep);
    bed.build_app(image, version);
    let built = docker(&["image", "inspect", "--format", "{{.Id}}", image]);
    push(image);
    docker(&["image", "rm", "--force", &built]);
    tag(&keep, image);
    docker(&["image", "rm", &keep]);
}

#[test]
fn lane2_check_and_update_over_tls_with_the_files_of_the_docker_table() {
    let engine = TlsEngine::require();
    let bed = TestBed::new("tls-docker-table");
    let registry = Registry::start();
    let agent = bed
        .agent_with_docker(&engine.docker_table(), &[registry.host()])
        // The test process's DOCKER_HOST is the lane's unix socket: [docker] host must win.
        .env("RUST_LOG", "info,tidewatch::engine=debug");
    bed.updater_of(&agent);

    check_then_update(&bed, &registry, &agent, &engine);
}

#[test]
fn lane2_check_and_update_over_tls_with_docker_host_docker_tls_verify_and_docker_cert_path() {
    let engine = TlsEngine::require();
    let bed = TestBed::new("tls-environment");
    let registry = Registry::start();
    // No key in [docker]: the environment decides, as for the docker CLI.
    let agent = bed
        .agent_with_docker("", &[registry.host()])
        .env("DOCKER_HOST", engine.host())
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", engine.certs())
        .env("RUST_LOG", "info,tidewatch::engine=debug");
    bed.updater_of(&agent);
    let written = fs::read_to_string(agent.config()).unwrap_or_default();
    assert!(
        written.contains("[docker]\n\n[watch]"),
        "[docker] must be empty:\n{written}"
    );

    check_then_update(&bed, &registry, &agent, &engine);
}

#[test]
fn lane2_an_engine_certificate_from_another_ca_fails_naming_the_host_and_the_tls_cause() {
    let engine = TlsEngine::require();
    let bed = TestBed::new("tls-wrong-ca");
    let wrong = TestCa::new("not the engine's");
    let wrong_ca = wrong.write_cert(&bed.dir().join("wrong-ca.pem"));
    let agent = bed.agent_with_docker(&engine.docker_table_with_ca(&wrong_ca), &[]);

    for command in ["check", "update"] {
        let outcome = agent.run(&[command]);

        assert_eq!(outcome.code, 1, "{command}: {outcome:#?}");
        let message = format!("engine at {} is not reachable", engine.host());
        assert!(
            outcome.stderr.contains(&message),
            "{command}: stderr should say {message:?}; {outcome:#?}"
        );
        // rustls: "invalid peer certificate: UnknownIssuer".
        assert!(
            outcome.stderr.contains("invalid peer certificate"),
            "{command}: stderr should give the TLS cause; {outcome:#?}"
        );
        assert!(
            !outcome.stderr.contains("panicked"),
            "{command}: {outcome:#?}"
        );
    }
}

#[test]
fn lane2_a_ca_without_a_client_certificate_is_refused_by_a_tlsverify_engine_with_the_cause() {
    let engine = TlsEngine::require();
    let bed = TestBed::new("tls-no-client-cert");
    let docker = format!(
        "host = {:?}\ntls_ca = {:?}\n",
        engine.host(),
        engine.certs().join("ca.pem").to_string_lossy()
    );
    let agent = bed.agent_with_docker(&docker, &[]);

    let outcome = agent.run(&["check"]);

    assert_eq!(outcome.code, 1, "{outcome:#?}");
    let message = format!("engine at {} is not reachable", engine.host());
    assert!(outcome.stderr.contains(&message), "{outcome:#?}");
    // The engine's alert, as rustls names it.
    assert!(
        outcome.stderr.contains("CertificateRequired"),
        "{outcome:#?}"
    );
}

/// `tidewatch -c FILE validate` with `docker` as the body of the `[docker]` table.
fn validate(docker: &str) -> (Outcome, String) {
    let dir = scratch_dir("validate-docker-");
    let config = dir.path().join("agent.toml");
    fs::write(&config, format!("[docker]\n{docker}"))
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", config.display()));
    let outcome = tidewatch([
        OsString::from("-c"),
        config.clone().into_os_string(),
        OsString::from("validate"),
    ]);
    (outcome, config.display().to_string())
}

#[test]
fn plain_tcp_to_another_machine_is_refused_by_validate_unless_insecure() {
    // TEST-NET-1: never contacted, validation does not connect.
    let (outcome, file) = validate("host = \"tcp://192.0.2.10:2375\"\n");

    assert_eq!(outcome.code, 2, "{outcome:#?}");
    let place = format!("{file}:2:8:");
    assert!(outcome.stderr.contains(&place), "{outcome:#?}");
    for words in ["tcp://192.0.2.10:2375", "tls_ca", "insecure = true"] {
        assert!(outcome.stderr.contains(words), "{words:?}; {outcome:#?}");
    }

    let (outcome, _) = validate("host = \"tcp://192.0.2.10:2375\"\ninsecure = true\n");
    assert_eq!(outcome.code, 0, "{outcome:#?}");
    let (outcome, _) = validate("host = \"tcp://127.0.0.1:2375\"\n");
    assert_eq!(outcome.code, 0, "loopback stays allowed; {outcome:#?}");
}

#[test]
fn half_a_client_certificate_is_refused_by_validate_with_its_place() {
    let dir = scratch_dir("validate-half-cert-");
    let ca = TestCa::new("validate").write_cert(&dir.path().join("ca.pem"));
    let docker = format!(
        "host = \"tcp://192.0.2.10:2376\"\ntls_ca = {:?}\ntls_cert = {:?}\n",
        ca.to_string_lossy(),
        ca.to_string_lossy()
    );
    let (outcome, file) = validate(&docker);

    assert_eq!(outcome.code, 2, "{outcome:#?}");
    assert!(
        outcome.stderr.contains(&format!("{file}:4:12:")),
        "{outcome:#?}"
    );
    assert!(
        outcome.stderr.contains("tls_cert needs tls_key"),
        "{outcome:#?}"
    );
}
