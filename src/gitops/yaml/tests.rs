//! Scanning and pinning literal files, compared byte for byte with what they should become.

use super::*;

const OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// The found images of `text`, failing the test on a file or row error.
fn found(path: &str, text: &str) -> Vec<FoundImage> {
    scan(path, text)
        .expect("the file scans")
        .into_iter()
        .map(|row| row.expect("the row has no error"))
        .collect()
}

/// `(row, reference)` of each found image.
fn rows(images: &[FoundImage]) -> Vec<(&str, &str)> {
    images
        .iter()
        .map(|i| (i.row.as_str(), i.reference.as_str()))
        .collect()
}

/// Pins every image of `text` to [`NEW`], keeping its tag, and checks that the result reads
/// back as the same rows with the pinned references.
fn pin_all(path: &str, text: &str) -> String {
    let images = found(path, text);
    let edits: Vec<(Site, String)> = images
        .iter()
        .map(|i| (i.site.clone(), pinned(&i.reference, NEW, None)))
        .collect();
    let out = pin(text, &edits).expect("the pins apply");
    let again = found(path, &out);
    assert_eq!(
        again
            .iter()
            .map(|i| (i.row.as_str(), i.reference.as_str(), &i.labels))
            .collect::<Vec<_>>(),
        images
            .iter()
            .zip(&edits)
            .map(|(i, (_, new))| (i.row.as_str(), new.as_str(), &i.labels))
            .collect::<Vec<_>>(),
        "the pinned file reads back as the same rows, pinned"
    );
    out
}

const COMPOSE: &str = r#"# The stack, deployed by Komodo.
services:
  web:
    image: registry.lan:5000/app:stable   # pinned by tidewatch
    labels:
      tidewatch.policy: notify
      com.example.team: web

  db:
    image: 'postgres:16'
    labels:
      - "tidewatch.tag=semver"
      - other=1
  cache:
    image: "redis"  # the default tag
  built:
    build: ./built
    image: registry.lan:5000/built:dev
  env:
    image: ${REGISTRY}/env:1
  pinned:
    image: "nginx:1.27@sha256:1111111111111111111111111111111111111111111111111111111111111111"
"#;

#[test]
fn compose_services_are_read_with_their_tidewatch_labels() {
    let images = found("stacks/web/compose.yaml", COMPOSE);
    assert_eq!(
        rows(&images),
        [
            (
                "stacks/web/compose.yaml#web",
                "registry.lan:5000/app:stable"
            ),
            ("stacks/web/compose.yaml#db", "postgres:16"),
            ("stacks/web/compose.yaml#cache", "redis"),
            (
                "stacks/web/compose.yaml#pinned",
                &*format!("nginx:1.27@{OLD}")
            ),
        ]
    );
    assert_eq!(
        images[0].labels,
        BTreeMap::from([("tidewatch.policy".to_string(), "notify".to_string())])
    );
    assert_eq!(
        images[1].labels,
        BTreeMap::from([("tidewatch.tag".to_string(), "semver".to_string())])
    );
    assert!(images[2].labels.is_empty());
    assert_eq!((images[0].line, images[0].col), (4, 12));
}

#[test]
fn pinning_compose_changes_only_the_image_scalars_and_keeps_their_quotes() {
    let expected = format!(
        r#"# The stack, deployed by Komodo.
services:
  web:
    image: registry.lan:5000/app:stable@{NEW}   # pinned by tidewatch
    labels:
      tidewatch.policy: notify
      com.example.team: web

  db:
    image: 'postgres:16@{NEW}'
    labels:
      - "tidewatch.tag=semver"
      - other=1
  cache:
    image: "redis:latest@{NEW}"  # the default tag
  built:
    build: ./built
    image: registry.lan:5000/built:dev
  env:
    image: ${{REGISTRY}}/env:1
  pinned:
    image: "nginx:1.27@{NEW}"
"#
    );
    assert_eq!(pin_all("compose.yaml", COMPOSE), expected);
}

#[test]
fn crlf_line_endings_stay() {
    let text = "services:\r\n  web:\r\n    image: 'app:1' # c\r\n\r\n  db:\r\n    image: db:2\r\n";
    let expected = format!(
        "services:\r\n  web:\r\n    image: 'app:1@{NEW}' # c\r\n\r\n  db:\r\n    image: db:2@{NEW}\r\n"
    );
    assert_eq!(
        rows(&found("compose.yaml", text)),
        [("compose.yaml#web", "app:1"), ("compose.yaml#db", "db:2")]
    );
    assert_eq!(pin_all("compose.yaml", text), expected);
}

#[test]
fn multi_byte_characters_before_a_scalar_do_not_shift_its_bytes() {
    // A byte order mark, accents and an emoji before the values, on earlier lines and on the
    // value's own line: saphyr-parser counts characters, the edit counts bytes.
    let text = "\u{feff}# Dienst für Grüße 😀\nservices:\n  wéb: {labels: {tidewatch.note: \"✓\"}, image: \"app:1\"}\n  db:\n    image: db:2 # ½\n";
    let images = found("c.yaml", text);
    assert_eq!(
        rows(&images),
        [("c.yaml#wéb", "app:1"), ("c.yaml#db", "db:2")]
    );
    assert_eq!(images[0].labels["tidewatch.note"], "✓");
    let expected = format!(
        "\u{feff}# Dienst für Grüße 😀\nservices:\n  wéb: {{labels: {{tidewatch.note: \"✓\"}}, image: \"app:1@{NEW}\"}}\n  db:\n    image: db:2@{NEW} # ½\n"
    );
    assert_eq!(pin_all("c.yaml", text), expected);
}

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    tidewatch.policy: ignore
    deployment.kubernetes.io/revision: "3"
spec:
  template:
    spec:
      initContainers:
        - name: migrate
          image: registry.lan/app-migrate:2.1
      containers:
        - name: app
          image: "registry.lan/app:2.1"
        - name: sidecar
          image: envoyproxy/envoy:v1.30.1 # proxy
"#;

#[test]
fn a_deployment_lists_its_containers_and_init_containers() {
    let images = found("k8s/web.yaml", DEPLOYMENT);
    assert_eq!(
        rows(&images),
        [
            ("k8s/web.yaml#Deployment/web/app", "registry.lan/app:2.1"),
            (
                "k8s/web.yaml#Deployment/web/sidecar",
                "envoyproxy/envoy:v1.30.1"
            ),
            (
                "k8s/web.yaml#Deployment/web/migrate",
                "registry.lan/app-migrate:2.1"
            ),
        ]
    );
    for image in &images {
        assert_eq!(
            image.labels,
            BTreeMap::from([("tidewatch.policy".to_string(), "ignore".to_string())])
        );
    }
    let expected = DEPLOYMENT
        .replace(
            "registry.lan/app-migrate:2.1",
            &format!("registry.lan/app-migrate:2.1@{NEW}"),
        )
        .replace(
            "\"registry.lan/app:2.1\"",
            &format!("\"registry.lan/app:2.1@{NEW}\""),
        )
        .replace(
            "envoyproxy/envoy:v1.30.1 #",
            &format!("envoyproxy/envoy:v1.30.1@{NEW} #"),
        );
    assert_eq!(pin_all("k8s/web.yaml", DEPLOYMENT), expected);
}

#[test]
fn a_cronjob_is_read_through_its_job_template() {
    let text = r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: backup
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: restic
              image: restic/restic:0.17.0
          restartPolicy: OnFailure
"#;
    assert_eq!(
        rows(&found("k8s/backup.yaml", text)),
        [(
            "k8s/backup.yaml#CronJob/backup/restic",
            "restic/restic:0.17.0"
        )]
    );
    assert_eq!(
        pin_all("k8s/backup.yaml", text),
        text.replace("0.17.0\n", &format!("0.17.0@{NEW}\n"))
    );
}

#[test]
fn each_document_of_a_multi_document_file_is_read_and_others_are_ignored() {
    let text = r#"---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  template:
    spec:
      containers: [{name: pg, image: "postgres:16"}]
---
apiVersion: v1
kind: Pod
metadata:
  name: debug
spec:
  containers:
  - name: shell
    image: busybox:1.36
...
"#;
    let images = found("all.yaml", text);
    assert_eq!(
        rows(&images),
        [
            ("all.yaml#StatefulSet/db/pg", "postgres:16"),
            ("all.yaml#Pod/debug/shell", "busybox:1.36"),
        ]
    );
    let expected = text
        .replace("\"postgres:16\"", &format!("\"postgres:16@{NEW}\""))
        .replace("busybox:1.36\n", &format!("busybox:1.36@{NEW}\n"));
    assert_eq!(pin_all("all.yaml", text), expected);
}

const KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
images:
  - name: app
    newName: registry.lan/app
    newTag: \"2.1\"   # the release
  - name: nginx
    newTag: '1.27'
    digest: sha256:1111111111111111111111111111111111111111111111111111111111111111
  - name: renamed-only
    newName: registry.lan/renamed
  - {name: redis, newTag: \"7\"}
";

#[test]
fn kustomization_entries_put_name_tag_and_digest_together() {
    let images = found("k8s/kustomization.yaml", KUSTOMIZATION);
    assert_eq!(
        rows(&images),
        [
            ("k8s/kustomization.yaml#images/app", "registry.lan/app:2.1"),
            (
                "k8s/kustomization.yaml#images/nginx",
                &*format!("nginx:1.27@{OLD}")
            ),
            ("k8s/kustomization.yaml#images/redis", "redis:7"),
        ]
    );
}

#[test]
fn pinning_a_kustomization_sets_or_inserts_digest_lines() {
    let expected = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
images:
  - name: app
    newName: registry.lan/app
    newTag: \"2.1\"   # the release
    digest: {NEW}
  - name: nginx
    newTag: '1.27'
    digest: {NEW}
  - name: renamed-only
    newName: registry.lan/renamed
  - {{name: redis, newTag: \"7\", digest: {NEW}}}
"
    );
    assert_eq!(pin_all("k8s/kustomization.yaml", KUSTOMIZATION), expected);
}

#[test]
fn a_moved_tag_rewrites_new_tag_and_a_bare_digest_only_the_digest() {
    let images = found("k8s/kustomization.yaml", KUSTOMIZATION);
    let edits = [
        (
            images[0].site.clone(),
            pinned(&images[0].reference, NEW, Some("2.2")),
        ),
        (images[1].site.clone(), NEW.to_string()),
    ];
    let expected = KUSTOMIZATION
        .replace(
            "newTag: \"2.1\"   # the release\n",
            &format!("newTag: \"2.2\"   # the release\n    digest: {NEW}\n"),
        )
        .replace(OLD, NEW);
    assert_eq!(
        pin(KUSTOMIZATION, &edits).expect("the pins apply"),
        expected
    );
}

#[test]
fn a_digest_line_is_inserted_with_the_files_crlf_and_at_an_end_without_newline() {
    let text = "images:\r\n- name: app\r\n  newTag: v1 # keep\r\n- name: db\r\n  newTag: v2";
    let expected = format!(
        "images:\r\n- name: app\r\n  newTag: v1 # keep\r\n  digest: {NEW}\r\n- name: db\r\n  newTag: v2\r\n  digest: {NEW}"
    );
    assert_eq!(pin_all("base/kustomization.yml", text), expected);
}

#[test]
fn a_flux_kustomization_keeps_its_images_under_spec() {
    let text = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\nspec:\n  images:\n    - name: app\n      newTag: \"3\"\n";
    assert_eq!(
        rows(&found("clusters/apps.yaml", text)),
        [("clusters/apps.yaml#images/app", "app:3")]
    );
}

#[test]
fn invalid_yaml_is_the_files_error_with_line_and_column() {
    let text = "services:\n  web:\n    image: app:1\n   bad: [\n";
    let error = scan("stacks/web/compose.yaml", text).expect_err("not YAML");
    assert!(
        error.to_string().starts_with("stacks/web/compose.yaml:4:"),
        "{error}"
    );
    assert_eq!(error.line, 4);
}

#[test]
fn an_unparsable_image_is_its_rows_error_and_the_others_go_on() {
    let text = "services:\n  bad:\n    image: \"Upper/Case:tag\"\n  list:\n    image: [a, b]\n  good:\n    image: app:1\n  empty:\n    image:\n";
    let rows = scan("compose.yaml", text).expect("the file scans");
    assert_eq!(rows.len(), 4);
    let errors: Vec<String> = rows
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| format!("{} {e}", e.row))
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].starts_with("compose.yaml#bad compose.yaml:3:12: invalid image reference"),
        "{}",
        errors[0]
    );
    assert_eq!(
        errors[1],
        "compose.yaml#list compose.yaml:5:12: the image is not a string"
    );
    assert!(errors[2].starts_with("compose.yaml#empty compose.yaml:"));
    let good = rows[2].as_ref().expect("good is read");
    assert_eq!(
        (good.row.as_str(), good.reference.as_str()),
        ("compose.yaml#good", "app:1")
    );
}

#[test]
fn a_block_scalar_image_is_a_row_error_since_it_cannot_be_pinned_in_place() {
    let text = "services:\n  web:\n    image: >-\n      app:1\n  db:\n    image: db:2\n";
    let rows = scan("compose.yaml", text).expect("the file scans");
    let error = rows[0].as_ref().expect_err("a block scalar");
    assert_eq!(error.row, "compose.yaml#web");
    assert!(error.to_string().contains("on one line"), "{error}");
    assert_eq!(rows[1].as_ref().map(|i| i.reference.as_str()), Ok("db:2"));
}

#[test]
fn an_anchored_image_is_pinned_once_where_the_anchor_is() {
    let text = "x-app: &app\n  image: app:1 # shared\n  restart: always\nservices:\n  a:\n    <<: *app\n  b:\n    <<: *app\n    labels: [tidewatch.policy=notify]\n";
    let images = found("compose.yaml", text);
    assert_eq!(
        rows(&images),
        [("compose.yaml#a", "app:1"), ("compose.yaml#b", "app:1")]
    );
    assert_eq!(images[0].site, images[1].site);
    assert_eq!(
        pin_all("compose.yaml", text),
        text.replace("app:1 #", &format!("app:1@{NEW} #"))
    );
    let disagreeing = [
        (images[0].site.clone(), pinned("app:1", NEW, None)),
        (images[1].site.clone(), pinned("app:1", OLD, None)),
    ];
    assert!(matches!(
        pin(text, &disagreeing),
        Err(EditError::Conflict { .. })
    ));
}

#[test]
fn a_site_that_no_longer_matches_the_text_is_refused() {
    let text = "services:\n  web:\n    image: app:1\n";
    let images = found("compose.yaml", text);
    let moved = "services:\n  web:\n    image: app:2\n";
    let edits = [(images[0].site.clone(), pinned("app:1", NEW, None))];
    assert_eq!(
        pin(moved, &edits),
        Err(EditError::Stale {
            offset: 28,
            expected: "app:1".to_string()
        })
    );
    assert!(matches!(pin("", &edits), Err(EditError::Stale { .. })));
}

#[test]
fn a_value_that_could_escape_its_scalar_is_refused() {
    let text = "services:\n  web:\n    image: app:1\n";
    let site = found("compose.yaml", text).remove(0).site;
    for value in ["app:1 # x", "app:1\nevil: 1", "'app'", "", "app\"", "{app}"] {
        assert_eq!(
            pin(text, &[(site.clone(), value.to_string())]),
            Err(EditError::Unsafe {
                value: value.to_string()
            }),
            "{value:?}"
        );
    }
}

#[test]
fn interpolated_values_are_skipped_in_every_kind_of_file() {
    let text = "kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: ${IMAGE}\n---\nimages:\n- name: app\n  newTag: $TAG\n";
    assert!(found("kustomization.yaml", text).is_empty());
}

#[test]
fn an_oversized_file_is_refused_before_parsing() {
    let text = "#".repeat(MAX_FILE_BYTES + 1);
    assert_eq!(scan("big.yaml", &text).expect_err("too big").line, 1);
}

#[test]
fn pinned_keeps_the_tag_replaces_a_digest_and_moves_a_tag() {
    assert_eq!(
        pinned("registry.lan:5000/app:stable", NEW, None),
        format!("registry.lan:5000/app:stable@{NEW}")
    );
    assert_eq!(
        pinned(&format!("registry.lan:5000/app:stable@{OLD}"), NEW, None),
        format!("registry.lan:5000/app:stable@{NEW}")
    );
    assert_eq!(
        pinned("app:1.2.3", NEW, Some("1.3.0")),
        format!("app:1.3.0@{NEW}")
    );
    assert_eq!(
        pinned("registry.lan:5000/app", NEW, None),
        format!("registry.lan:5000/app:latest@{NEW}")
    );
    assert_eq!(
        pinned(&format!("app@{OLD}"), NEW, None),
        format!("app@{NEW}")
    );
}

#[test]
fn a_kustomization_entry_in_error_does_not_hide_the_next_ones() {
    let text = "images:\n- name: bad\n  newTag: {a: 1}\n- name: good\n  newTag: v2\n";
    let rows = scan("kustomization.yaml", text).expect("the file scans");
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0].as_ref().map_err(ToString::to_string),
        Err("kustomization.yaml:3:11: newTag is not a string".to_string())
    );
    assert_eq!(
        rows[1].as_ref().map(|i| i.reference.as_str()),
        Ok("good:v2")
    );
}

#[test]
fn positions_stay_right_far_into_a_file_of_multi_byte_characters() {
    // Past several of the character-to-byte checkpoints (one every 256 characters).
    let comment = format!("# {}\n", "é€😀".repeat(400));
    let text = format!(
        "{comment}services:\n  web:\n    image: app:1 # {comment}  db:\n    image: 'db:2'\n"
    );
    let expected = format!(
        "{comment}services:\n  web:\n    image: app:1@{NEW} # {comment}  db:\n    image: 'db:2@{NEW}'\n"
    );
    assert_eq!(pin_all("compose.yaml", &text), expected);
}

#[test]
fn no_digest_line_is_added_after_an_aliased_value() {
    let text =
        "registry: &name registry.lan/app\nimages:\n- name: app\n  newTag: v1\n  newName: *name\n";
    let images = found("kustomization.yaml", text);
    assert_eq!(
        rows(&images),
        [("kustomization.yaml#images/app", "registry.lan/app:v1")]
    );
    let edits = [(
        images[0].site.clone(),
        pinned("registry.lan/app:v1", NEW, None),
    )];
    assert_eq!(
        pin(text, &edits),
        Err(EditError::NoInsertion {
            key: "digest",
            name: "registry.lan/app".to_string()
        })
    );
}

#[test]
fn every_character_a_reference_may_have_is_written() {
    let text = "services:\n  web:\n    image: registry-1.lan:5000/my_team/my__app.x:v1_2-rc.3\n";
    let expected = format!(
        "services:\n  web:\n    image: registry-1.lan:5000/my_team/my__app.x:v1_2-rc.3@{NEW}\n"
    );
    assert_eq!(pin_all("compose.yaml", text), expected);
}

#[test]
fn a_lone_carriage_return_ends_a_line_too() {
    let text = "images:\r- name: app\r  newTag: v1 # x\r- name: db\r  newTag: v2\r";
    let expected =
        format!("images:\r- name: app\r  newTag: v1 # x\r  digest: {NEW}\r- name: db\r  newTag: v2\r  digest: {NEW}\r");
    assert_eq!(pin_all("kustomization.yaml", text), expected);
}

#[test]
fn no_digest_line_is_added_after_a_null_or_a_complex_key() {
    for text in [
        "images:\n- name: app\n  newTag: v1\n  note:\n- name: db\n  newTag: v2\n",
        "images:\n- name: app\n  newTag: v1\n  ? {a: b}\n  : c\n",
    ] {
        let images = found("kustomization.yaml", text);
        let edits = [(images[0].site.clone(), pinned("app:v1", NEW, None))];
        assert_eq!(
            pin(text, &edits),
            Err(EditError::NoInsertion {
                key: "digest",
                name: "app".to_string()
            }),
            "{text:?}"
        );
    }
}

#[test]
fn an_anchored_image_also_used_as_something_else_is_not_pinned() {
    let text = "kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: &n app\n    image: *n\n  - name: db\n    image: &d db:2\n  - name: db-copy\n    image: *d\n";
    let rows = scan("pod.yaml", text).expect("the file scans");
    let error = rows[0].as_ref().expect_err("the anchor is a name too");
    assert_eq!(error.row, "pod.yaml#Pod/p/app");
    assert!(error.to_string().contains("anchor"), "{error}");
    // An anchor used only by images is pinned once for all of them.
    assert_eq!(
        rows[1..]
            .iter()
            .map(|r| r.as_ref().map(|i| i.reference.as_str()))
            .collect::<Vec<_>>(),
        [Ok("db:2"), Ok("db:2")]
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// One compose service as generated: name, image, quoting, comment, blank line after.
    type Service = (String, String, usize, Option<String>, bool);

    fn service() -> impl Strategy<Value = Service> {
        (
            "[a-z][a-z0-9_-]{0,8}",
            "([a-z0-9-]{1,10}\\.lan(:[0-9]{1,4})?/)?[a-z0-9]{1,8}(/[a-z0-9]{1,8}(_[a-z0-9]{1,4})?)?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,10})?",
            0..3usize,
            prop::option::of("[a-zA-Z0-9 éü€😀✓#:'\"-]{0,20}"),
            any::<bool>(),
        )
    }

    /// A compose file of `services`, each image written as `image(reference)` gives it.
    fn compose(services: &[Service], eol: &str, image: impl Fn(&str) -> String) -> String {
        let mut text = format!("# ✓ generated{eol}services:{eol}");
        for (i, (name, reference, quote, comment, blank)) in services.iter().enumerate() {
            let quote = ["", "'", "\""][*quote];
            let comment = comment
                .as_ref()
                .map_or(String::new(), |c| format!("  # {c}"));
            text.push_str(&format!(
                "  s{i}{name}:{eol}    image: {quote}{}{quote}{comment}{eol}",
                image(reference)
            ));
            if *blank {
                text.push_str(eol);
            }
        }
        text
    }

    proptest! {
        #[test]
        fn pinning_a_compose_file_changes_only_the_references(
            services in prop::collection::vec(service(), 1..6),
            crlf in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let text = compose(&services, eol, str::to_string);
            let expected = compose(&services, eol, |r| pinned(r, NEW, None));
            prop_assert_eq!(pin_all("compose.yaml", &text), expected);
        }
    }
}

#[test]
fn merges_of_one_huge_mapping_into_many_services_are_refused_not_followed() {
    // Some billion key comparisons if followed; the look-ups' budget stops them.
    let mut text = String::from("x: &x {");
    for k in 0..5000 {
        text.push_str(&format!("k{k}: 0, "));
    }
    text.push_str("}\nservices:\n");
    for s in 0..12000 {
        text.push_str(&format!("  s{s}: {{<<: *x}}\n"));
    }
    let error = scan("compose.yaml", &text).expect_err("too costly");
    assert_eq!(
        error.to_string(),
        "compose.yaml:1:1: the file's merge keys (<<) make it too costly to read"
    );
}

#[test]
fn pinning_again_to_the_same_digest_changes_nothing() {
    for (path, text) in [
        ("compose.yaml", COMPOSE),
        ("k8s/web.yaml", DEPLOYMENT),
        ("k8s/kustomization.yaml", KUSTOMIZATION),
    ] {
        let once = pin_all(path, text);
        assert_ne!(once, text);
        assert_eq!(pin_all(path, &once), once, "{path}");
    }
}
