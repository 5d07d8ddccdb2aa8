use super::*;

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const AMD: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ARM: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn watch(scope: Option<&str>, label_enable: bool) -> WatchConfig {
    WatchConfig {
        scope: scope.map(str::to_string),
        label_enable,
        ..Default::default()
    }
}

fn amd64() -> Platform {
    Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    }
}

/// An image on the classic store with these repo digests (its id is a config digest).
fn classic(repo_digests: &[String]) -> RunningImage<'_> {
    RunningImage {
        id: "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
        repo_digests,
        store: ImageStore::Classic,
    }
}

fn origin_only(r: &ImageRef) -> Vec<String> {
    vec![r.name()]
}

fn manifest(digest: &str) -> RemoteManifest {
    RemoteManifest {
        digest: digest.into(),
        media_type: Some("application/vnd.docker.distribution.manifest.v2+json".into()),
        note: None,
    }
}

fn index(digest: &str) -> RemoteManifest {
    RemoteManifest {
        digest: digest.into(),
        media_type: Some("application/vnd.oci.image.index.v1+json".into()),
        note: None,
    }
}

fn entry(digest: &str, arch: &str) -> IndexEntry {
    IndexEntry {
        digest: digest.into(),
        os: "linux".into(),
        architecture: arch.into(),
        variant: None,
    }
}

#[test]
fn unscoped_agent_watches_only_unscoped_containers() {
    let w = watch(None, false);
    assert_eq!(eligibility(&labels(&[]), &w), Eligibility::Watched);
    assert_eq!(
        eligibility(&labels(&[("tidewatch.scope", "prod")]), &w),
        Eligibility::OutOfScope
    );
}

#[test]
fn scoped_agent_watches_only_its_scope() {
    let w = watch(Some("prod"), false);
    assert_eq!(eligibility(&labels(&[]), &w), Eligibility::OutOfScope);
    assert_eq!(
        eligibility(&labels(&[("tidewatch.scope", "prod")]), &w),
        Eligibility::Watched
    );
    assert_eq!(
        eligibility(
            &labels(&[("com.centurylinklabs.watchtower.scope", "prod")]),
            &w
        ),
        Eligibility::Watched
    );
}

#[test]
fn enable_false_always_excludes() {
    for label_enable in [false, true] {
        let e = eligibility(
            &labels(&[("tidewatch.enable", "false")]),
            &watch(None, label_enable),
        );
        assert!(matches!(e, Eligibility::Excluded(_)), "{e:?}");
    }
}

#[test]
fn label_enable_requires_enable_true() {
    let w = watch(None, true);
    assert!(matches!(
        eligibility(&labels(&[]), &w),
        Eligibility::Excluded(_)
    ));
    assert_eq!(
        eligibility(&labels(&[("tidewatch.enable", "true")]), &w),
        Eligibility::Watched
    );
}

#[test]
fn pinned_reference_is_skipped() {
    let t = target(
        "web",
        &format!("127.0.0.1:5000/app@{D1}"),
        &classic(&[]),
        &origin_only,
    );
    let Target::Settled(row) = t else {
        panic!("{t:?}")
    };
    assert_eq!(row.status, Status::Skipped);
}

#[test]
fn locally_built_image_is_unknown_not_an_update() {
    let t = target("web", "app:dev", &classic(&[]), &origin_only);
    let Target::Settled(row) = t else {
        panic!("{t:?}")
    };
    assert_eq!(row.status, Status::Unknown);
}

#[test]
fn repo_digest_of_another_repository_does_not_count() {
    let t = target(
        "web",
        "127.0.0.1:5000/app:latest",
        &classic(&[format!("127.0.0.1:5001/app@{D1}")]),
        &origin_only,
    );
    assert!(matches!(
        t,
        Target::Settled(CheckRow {
            status: Status::Unknown,
            ..
        })
    ));
}

#[test]
fn matching_repo_digest_needs_a_lookup() {
    let t = target(
        "web",
        "127.0.0.1:5000/app",
        &classic(&[format!("127.0.0.1:5000/app@{D1}")]),
        &origin_only,
    );
    let Target::Remote {
        reference,
        current,
        confirm,
    } = t
    else {
        panic!("{t:?}")
    };
    assert_eq!(reference.to_string(), "127.0.0.1:5000/app:latest");
    assert_eq!(current, vec![D1.to_string()]);
    assert_eq!(
        confirm, None,
        "the classic store records where digests came from"
    );
}

#[test]
fn containerd_store_image_that_lost_its_tag_is_still_checked_by_its_id() {
    // The containerd store reports no RepoDigests once `app:latest` moved to another image,
    // though the container runs what was pulled as D1 (its image id).
    let running = RunningImage {
        id: D1,
        repo_digests: &[],
        store: ImageStore::Containerd,
    };
    let t = target("web", "127.0.0.1:5000/app:latest", &running, &origin_only);
    let Target::Remote {
        current, confirm, ..
    } = t
    else {
        panic!("{t:?}")
    };
    assert_eq!(current, vec![D1.to_string()]);
    assert_eq!(confirm.as_deref(), Some(D1));
}

#[test]
fn containerd_store_local_build_is_unknown_once_the_registry_denies_its_digest() {
    // A local build has a made-up repo digest of its own manifest on this store: only the
    // registry can tell it from a pulled image.
    let digests = [format!("127.0.0.1:5000/app@{D1}")];
    let running = RunningImage {
        id: D1,
        repo_digests: &digests,
        store: ImageStore::Containerd,
    };
    let Target::Remote {
        current, confirm, ..
    } = target("web", "127.0.0.1:5000/app:latest", &running, &origin_only)
    else {
        panic!("expected a registry lookup")
    };
    let row = CheckRow {
        container: "web".into(),
        image: "127.0.0.1:5000/app:latest".into(),
        current_digest: Some(current[0].clone()),
        available_digest: Some(D2.into()),
        status: Status::UpdateAvailable,
        detail: None,
        notes: Default::default(),
        signature: None,
    };
    let denied = confirmed(row.clone(), false, "127.0.0.1:5000/app");
    assert_eq!(denied.status, Status::Unknown);
    assert!(denied
        .detail
        .as_deref()
        .unwrap_or_default()
        .contains("built locally"));
    assert_eq!(confirm.as_deref(), Some(D1));
    // Held by the registry: a pulled image whose tag moved on, so an update.
    assert_eq!(
        confirmed(row, true, "127.0.0.1:5000/app").status,
        Status::UpdateAvailable
    );
}

#[test]
fn containerd_store_up_to_date_rows_need_no_confirmation() {
    let row = CheckRow {
        container: "web".into(),
        image: "app".into(),
        current_digest: Some(D1.into()),
        available_digest: Some(D1.into()),
        status: Status::UpToDate,
        detail: None,
        notes: Default::default(),
        signature: None,
    };
    assert_eq!(confirmed(row.clone(), false, "app"), row);
}

#[test]
fn same_digest_is_up_to_date() {
    let c = compare(&[D1.into()], &amd64(), &manifest(D1), None);
    assert_eq!(
        c,
        Comparison::UpToDate {
            current: D1.into(),
            detail: None
        }
    );
}

#[test]
fn new_single_manifest_is_an_update_without_reading_anything_else() {
    let c = compare(&[D1.into()], &amd64(), &manifest(D2), None);
    assert_eq!(c, Comparison::UpdateAvailable { current: D1.into() });
}

#[test]
fn platform_pull_of_current_index_is_up_to_date() {
    let current = [AMD.to_string()];
    assert_eq!(
        compare(&current, &amd64(), &index(D1), None),
        Comparison::NeedIndex
    );
    let entries = [entry(AMD, "amd64"), entry(ARM, "arm64")];
    let c = compare(&current, &amd64(), &index(D1), Some(&entries));
    assert!(
        matches!(c, Comparison::UpToDate { ref current, .. } if current == AMD),
        "{c:?}"
    );
}

#[test]
fn index_whose_platform_manifest_changed_is_an_update() {
    let current = [AMD.to_string()];
    let entries = [entry(D2, "amd64"), entry(ARM, "arm64")];
    let c = compare(&current, &amd64(), &index(D1), Some(&entries));
    assert_eq!(
        c,
        Comparison::UpdateAvailable {
            current: AMD.into()
        }
    );
}

#[test]
fn another_platforms_manifest_does_not_match() {
    // The digest the container has is the arm64 entry, but the container is amd64.
    let current = [ARM.to_string()];
    let entries = [entry(AMD, "amd64"), entry(ARM, "arm64")];
    let c = compare(&current, &amd64(), &index(D1), Some(&entries));
    assert!(matches!(c, Comparison::UpdateAvailable { .. }));
}

#[test]
fn attestation_entries_never_match() {
    let current = [AMD.to_string()];
    let entries = [
        entry(D2, "amd64"),
        IndexEntry {
            digest: AMD.into(),
            os: "unknown".into(),
            architecture: "unknown".into(),
            variant: None,
        },
    ];
    let c = compare(&current, &amd64(), &index(D1), Some(&entries));
    assert!(matches!(c, Comparison::UpdateAvailable { .. }));
}

#[test]
fn status_names_are_the_json_contract() {
    let names: Vec<String> = [
        Status::UpToDate,
        Status::UpdateAvailable,
        Status::Unknown,
        Status::Skipped,
        Status::Error,
    ]
    .iter()
    .map(|s| serde_json::to_string(s).unwrap())
    .collect();
    assert_eq!(
        names,
        [
            "\"up_to_date\"",
            "\"update_available\"",
            "\"unknown\"",
            "\"skipped\"",
            "\"error\""
        ]
    );
}

#[test]
fn digest_recorded_under_a_mirror_counts_for_the_origin() {
    let mirror = |r: &ImageRef| vec![r.name(), format!("127.0.0.1:5001/{}", r.repository())];
    let t = target(
        "web",
        "127.0.0.1:5000/app:latest",
        &classic(&[format!("127.0.0.1:5001/app@{D1}")]),
        &mirror,
    );
    assert!(matches!(t, Target::Remote { ref current, .. } if current == &[D1.to_string()]));
}

#[test]
fn policy_comes_from_service_then_label_then_default() {
    let mut w = watch(None, false);
    w.policy = Policy::Update;
    let mut services = BTreeMap::new();
    assert_eq!(
        policy_for("web", &labels(&[]), &w, &services),
        Policy::Update
    );
    assert_eq!(
        policy_for(
            "web",
            &labels(&[("tidewatch.policy", "notify")]),
            &w,
            &services
        ),
        Policy::Notify
    );
    assert_eq!(
        policy_for(
            "web",
            &labels(&[("com.centurylinklabs.watchtower.monitor-only", "true")]),
            &w,
            &services
        ),
        Policy::Notify
    );
    assert_eq!(
        policy_for(
            "web",
            &labels(&[("tidewatch.policy", "bogus")]),
            &w,
            &services
        ),
        Policy::Notify,
        "an unreadable label must not let updates through"
    );
    services.insert(
        "web".to_string(),
        ServiceConfig {
            name: "web".into(),
            policy: Some(Policy::Ignore),
            ..Default::default()
        },
    );
    assert_eq!(
        policy_for(
            "web",
            &labels(&[("tidewatch.policy", "notify")]),
            &w,
            &services
        ),
        Policy::Ignore
    );
}
