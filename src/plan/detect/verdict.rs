//! The detection stage's two pure halves: which containers need the registry asked what
//! ([`targets`]), and, once it answered ([`Remotes`]), each container's verdict
//! ([`verdicts`]).

use std::collections::{BTreeSet, HashMap};

use super::{compare, confirmed, eligibility, policy_for, target, CheckRow, Comparison};
use super::{Eligibility, ImageStore, RunningImage, Status, Target};
use crate::config::{Config, Policy};
use crate::image_ref::ImageRef;
use crate::plan::observed::{Kind, Observed};
use crate::plan::remote::{IndexEntry, RemoteManifest};

/// A container (or service) in scope, and what detecting its verdict needs.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Its name.
    pub name: String,
    /// Settled already, or what to ask the registry.
    pub target: Target,
}

/// Why the registry could not answer about a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFailure {
    /// What went wrong, naming the registry.
    pub detail: String,
    /// The registry was not asked this cycle (rate limit reserve): the row is `unknown`, not
    /// an `error`.
    pub deferred: bool,
}

/// What a registry lookup gives.
pub type Lookup<T> = Result<T, RemoteFailure>;

/// What the registries said, for [`verdicts`]: filled by `registry::resolve`.
#[derive(Debug, Clone, Default)]
pub struct Remotes {
    /// With tag tracking, by container: the newer tag's reference to move to (`None`: stay),
    /// or why the tags could not be read.
    pub tracked: HashMap<String, Lookup<Option<ImageRef>>>,
    /// What each reference points to now.
    pub manifests: HashMap<ImageRef, Lookup<RemoteManifest>>,
    /// The entries of the multi-arch indexes a comparison needed, by index digest.
    pub indexes: HashMap<String, Lookup<Vec<IndexEntry>>>,
    /// Whether a repository holds a digest, by (repository, digest), for
    /// [`Target::Remote::confirm`].
    pub held: HashMap<(String, String), Lookup<bool>>,
}

/// A watched container's verdict, and what it rests on.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The container (or service).
    pub name: String,
    /// The verdict as `check` prints it.
    pub row: CheckRow,
    /// With tag tracking, the reference of the newer tag the container should move to.
    pub new_image: Option<String>,
}

/// The containers (and services) in scope, each with what its verdict needs: only those in
/// `names` when it is not empty. `aliases` gives the repository names under which an image
/// may record digests of a reference (the origin, and its pull-through mirrors).
pub fn targets(
    observed: &[Observed],
    store: ImageStore,
    config: &Config,
    names: &[String],
    aliases: &dyn Fn(&ImageRef) -> Vec<String>,
) -> Vec<Pending> {
    let wanted: BTreeSet<&str> = names.iter().map(|n| n.trim_start_matches('/')).collect();
    observed
        .iter()
        .filter(|o| wanted.is_empty() || wanted.contains(o.name.as_str()))
        .filter_map(|o| {
            let settled = |status, detail: String| Target::Settled(row(o, status, detail));
            let target = match eligibility(&o.labels, &config.watch) {
                Eligibility::OutOfScope => return None,
                Eligibility::Excluded(reason) => settled(Status::Skipped, reason),
                Eligibility::Watched
                    if policy_for(&o.name, &o.labels, &config.watch, &config.services)
                        == Policy::Ignore =>
                {
                    settled(Status::Skipped, "policy ignore".into())
                }
                Eligibility::Watched => match &o.problem {
                    Some(problem) => settled(Status::Error, problem.clone()),
                    None if o.kind == Kind::Service && o.repo_digests.is_empty() => {
                        service_target(o, aliases)
                    }
                    None => target(&o.name, &o.image, &running(o, store), aliases),
                },
            };
            Some(Pending {
                name: o.name.clone(),
                target,
            })
        })
        .collect()
}

/// The image `o` runs, as detection reads it.
fn running(o: &Observed, store: ImageStore) -> RunningImage<'_> {
    RunningImage {
        id: &o.image_id,
        repo_digests: &o.repo_digests,
        // A service's "image" is its spec's pinned digest, whatever store the manager has.
        store: match o.kind {
            Kind::Container => store,
            Kind::Service => ImageStore::Classic,
        },
    }
}

/// A service whose image names no digest: `docker service create --no-resolve-image` (or an
/// image the CLI could not resolve) leaves the tag alone, and which digest its tasks run
/// cannot be told from the service.
fn service_target(o: &Observed, aliases: &dyn Fn(&ImageRef) -> Vec<String>) -> Target {
    match target(&o.name, &o.image, &running(o, ImageStore::Classic), aliases) {
        Target::Settled(mut row) if row.status == Status::Unknown => {
            row.detail = Some(
                "the service's image is not pinned to a digest (deployed with \
                 --no-resolve-image?): what its tasks run cannot be told"
                    .into(),
            );
            Target::Settled(row)
        }
        other => other,
    }
}

/// The reference the registry is asked about for `pending`: its own, or with tag tracking the
/// newer tag's. `None` when its verdict is settled already.
pub fn asked_reference<'a>(pending: &'a Pending, remotes: &'a Remotes) -> Option<&'a ImageRef> {
    let Target::Remote { reference, .. } = &pending.target else {
        return None;
    };
    match remotes.tracked.get(&pending.name) {
        Some(Ok(Some(newer))) => Some(newer),
        Some(Err(_)) => None,
        Some(Ok(None)) | None => Some(reference),
    }
}

/// Each container's verdict, from what the registries said. Everything the comparisons need
/// is in `remotes` (see `registry::resolve`); what is missing is an `error` row saying so.
pub fn verdicts(pending: &[Pending], observed: &[Observed], remotes: &Remotes) -> Vec<Detection> {
    let by_name: HashMap<&str, &Observed> = observed.iter().map(|o| (o.name.as_str(), o)).collect();
    pending
        .iter()
        .filter_map(|p| {
            let o = by_name.get(p.name.as_str())?;
            Some(verdict(p, o, remotes))
        })
        .collect()
}

fn verdict(pending: &Pending, o: &Observed, remotes: &Remotes) -> Detection {
    let detection = |row, new_image| Detection {
        name: pending.name.clone(),
        row,
        new_image,
    };
    let (reference, current, confirm) = match &pending.target {
        Target::Settled(row) => return detection(row.clone(), None),
        Target::Remote {
            reference,
            current,
            confirm,
        } => (reference, current, confirm),
    };
    let reference = match remotes.tracked.get(&pending.name) {
        Some(Err(e)) => return detection(failed(o, None, e.detail.clone()), None),
        Some(Ok(Some(newer))) => newer,
        Some(Ok(None)) | None => reference,
    };
    let new_image =
        (Some(reference) != target_reference(&pending.target)).then(|| reference.to_string());
    let mut row = match remotes.manifests.get(reference) {
        Some(Ok(m)) => compared(o, current, m, remotes),
        Some(Err(e)) => {
            let mut row = failed(o, current.first().cloned(), e.detail.clone());
            if e.deferred {
                row.status = Status::Unknown;
            }
            row
        }
        None => failed(o, None, "internal: reference was not resolved".into()),
    };
    if let Some(digest) = confirm
        .as_ref()
        .filter(|_| row.status == Status::UpdateAvailable)
    {
        let key = (reference.name(), digest.clone());
        row = match remotes.held.get(&key) {
            Some(Ok(known)) => confirmed(row, *known, &key.0),
            Some(Err(e)) => failed(o, row.current_digest, e.detail.clone()),
            None => {
                let detail = format!("internal: {} was not asked about {digest}", key.0);
                failed(o, row.current_digest, detail)
            }
        };
    }
    if let Some(new) = &new_image {
        let note = format!("tracks tags: newest is {new}");
        row.detail = Some(match row.detail.take() {
            Some(d) => format!("{note}; {d}"),
            None => note,
        });
    }
    detection(row, new_image)
}

fn target_reference(target: &Target) -> Option<&ImageRef> {
    match target {
        Target::Remote { reference, .. } => Some(reference),
        Target::Settled(_) => None,
    }
}

/// The comparison of `current` with what the registry has, `NeedIndex` settled by the index
/// `remotes` holds.
fn compared(o: &Observed, current: &[String], m: &RemoteManifest, remotes: &Remotes) -> CheckRow {
    let mut comparison = compare(current, &o.platform, m, None);
    if comparison == Comparison::NeedIndex {
        match remotes.indexes.get(&m.digest) {
            Some(Ok(entries)) => comparison = compare(current, &o.platform, m, Some(entries)),
            Some(Err(e)) => return failed(o, current.first().cloned(), e.detail.clone()),
            None => {
                let detail = format!("internal: index {} was not read", m.digest);
                return failed(o, current.first().cloned(), detail);
            }
        }
    }
    let (status, current, detail) = match comparison {
        Comparison::UpToDate { current, detail } => (Status::UpToDate, current, detail),
        Comparison::UpdateAvailable { current } => (Status::UpdateAvailable, current, None),
        Comparison::NeedIndex => return failed(o, None, "internal: index entries missing".into()),
    };
    let detail = match (detail, &m.note) {
        (Some(d), Some(n)) => Some(format!("{d}; {n}")),
        (d, n) => d.or_else(|| n.clone()),
    };
    CheckRow {
        container: o.name.clone(),
        image: o.image.clone(),
        current_digest: Some(current),
        available_digest: Some(m.digest.clone()),
        status,
        detail,
        notes: Default::default(),
        signature: None,
    }
}

/// An `error` row (logged), with the digest the container runs when it is known.
fn failed(o: &Observed, current: Option<String>, detail: String) -> CheckRow {
    tracing::warn!(container = %o.name, image = %o.image, "{detail}");
    CheckRow {
        current_digest: current,
        ..row(o, Status::Error, detail)
    }
}

/// A row with no digests.
fn row(o: &Observed, status: Status, detail: String) -> CheckRow {
    CheckRow {
        container: o.name.clone(),
        image: o.image.clone(),
        current_digest: None,
        available_digest: None,
        status,
        detail: Some(detail),
        notes: Default::default(),
        signature: None,
    }
}

/// Groups rows by status, for summaries.
pub fn count_by_status(rows: &[CheckRow]) -> HashMap<Status, usize> {
    let mut m = HashMap::new();
    for r in rows {
        *m.entry(r.status).or_insert(0) += 1;
    }
    m
}

/// Rows for names asked for on the command line that are not running in scope.
pub fn missing_rows(names: &[String], rows: &[CheckRow]) -> Vec<CheckRow> {
    names
        .iter()
        .map(|n| n.trim_start_matches('/'))
        .filter(|n| !rows.iter().any(|r| r.container == *n))
        .map(|n| CheckRow {
            container: n.to_string(),
            image: String::new(),
            current_digest: None,
            available_digest: None,
            status: Status::Error,
            detail: Some("no running container of that name in this agent's scope".into()),
            notes: Default::default(),
            signature: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::observed::Platform;

    const OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const INDEX: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
    const INDEX_MEDIA: &str = "application/vnd.oci.image.index.v1+json";

    fn amd64() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }

    /// A running container on `image` whose image was pulled as `digest`.
    fn container(name: &str, image: &str, digest: &str, labels: &[(&str, &str)]) -> Observed {
        let repository = image.rsplit_once(':').map_or(image, |(r, _)| r);
        Observed {
            kind: Kind::Container,
            id: format!("id-{name}"),
            name: name.into(),
            image: image.into(),
            image_id: "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
                .into(),
            repo_digests: vec![format!("{repository}@{digest}")],
            platform: amd64(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            state: "running".into(),
            problem: None,
            details: None,
            image_labels: Default::default(),
        }
    }

    fn config(text: &str) -> Config {
        Config::parse(text, "agent.toml").unwrap()
    }

    fn origin_only(r: &ImageRef) -> Vec<String> {
        vec![r.name()]
    }

    /// The targets of `observed` on the classic store, with no configuration.
    fn classic_targets(observed: &[Observed]) -> Vec<Pending> {
        targets(
            observed,
            ImageStore::Classic,
            &config(""),
            &[],
            &origin_only,
        )
    }

    fn reference(text: &str) -> ImageRef {
        ImageRef::parse(text).unwrap()
    }

    fn manifest(digest: &str) -> Lookup<RemoteManifest> {
        Ok(RemoteManifest {
            digest: digest.into(),
            media_type: None,
            note: None,
        })
    }

    fn status_of(detections: &[Detection], name: &str) -> (Status, Option<String>) {
        let d = detections.iter().find(|d| d.name == name).unwrap();
        (d.row.status, d.row.detail.clone())
    }

    #[test]
    fn targets_leave_out_other_scopes_and_settle_excluded_and_ignored_containers() {
        let observed = [
            container("web", "registry.example/web:1", OLD, &[]),
            container(
                "off",
                "registry.example/off:1",
                OLD,
                &[("tidewatch.enable", "false")],
            ),
            container(
                "calm",
                "registry.example/calm:1",
                OLD,
                &[("tidewatch.policy", "ignore")],
            ),
            container(
                "theirs",
                "registry.example/x:1",
                OLD,
                &[("tidewatch.scope", "b")],
            ),
        ];
        let pending = classic_targets(&observed);
        let names: Vec<&str> = pending.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["web", "off", "calm"]);
        assert!(matches!(pending[0].target, Target::Remote { .. }));
        for settled in &pending[1..] {
            let Target::Settled(row) = &settled.target else {
                panic!("{settled:?} should be settled");
            };
            assert_eq!(row.status, Status::Skipped);
        }
        let named = targets(
            &observed,
            ImageStore::Classic,
            &config(""),
            &["/calm".to_string()],
            &origin_only,
        );
        assert_eq!(named.len(), 1);
        assert_eq!(named[0].name, "calm");
    }

    #[test]
    fn verdicts_compare_each_container_with_its_references_answer() {
        let observed = [
            container("same", "registry.example/a:1", OLD, &[]),
            container("behind", "registry.example/b:1", OLD, &[]),
            container("deferred", "registry.example/c:1", OLD, &[]),
            container("failed", "registry.example/d:1", OLD, &[]),
        ];
        let pending = classic_targets(&observed);
        let failure = |deferred| RemoteFailure {
            detail: "registry.example: no".into(),
            deferred,
        };
        let remotes = Remotes {
            manifests: [
                (reference("registry.example/a:1"), manifest(OLD)),
                (reference("registry.example/b:1"), manifest(NEW)),
                (reference("registry.example/c:1"), Err(failure(true))),
                (reference("registry.example/d:1"), Err(failure(false))),
            ]
            .into(),
            ..Remotes::default()
        };
        let detections = verdicts(&pending, &observed, &remotes);
        assert_eq!(status_of(&detections, "same").0, Status::UpToDate);
        let behind = detections.iter().find(|d| d.name == "behind").unwrap();
        assert_eq!(behind.row.status, Status::UpdateAvailable);
        assert_eq!(behind.row.current_digest.as_deref(), Some(OLD));
        assert_eq!(behind.row.available_digest.as_deref(), Some(NEW));
        let deferred = detections.iter().find(|d| d.name == "deferred").unwrap();
        assert_eq!(deferred.row.status, Status::Unknown);
        assert_eq!(deferred.row.current_digest.as_deref(), Some(OLD));
        assert_eq!(
            status_of(&detections, "failed"),
            (Status::Error, Some("registry.example: no".into()))
        );
    }

    #[test]
    fn a_multi_arch_index_is_decided_by_the_entry_for_the_containers_platform() {
        let observed = [container("web", "registry.example/web:1", OLD, &[])];
        let pending = classic_targets(&observed);
        let index = Ok(RemoteManifest {
            digest: INDEX.into(),
            media_type: Some(INDEX_MEDIA.into()),
            note: None,
        });
        let mut remotes = Remotes {
            manifests: [(reference("registry.example/web:1"), index)].into(),
            ..Remotes::default()
        };
        let missing = verdicts(&pending, &observed, &remotes);
        assert_eq!(status_of(&missing, "web").0, Status::Error, "{missing:?}");

        let entry = |digest: &str, architecture: &str| IndexEntry {
            digest: digest.into(),
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        };
        remotes.indexes.insert(
            INDEX.into(),
            Ok(vec![entry(NEW, "arm64"), entry(OLD, "amd64")]),
        );
        let detections = verdicts(&pending, &observed, &remotes);
        let web = &detections[0];
        assert_eq!(web.row.status, Status::UpToDate, "{web:?}");
        assert_eq!(web.row.current_digest.as_deref(), Some(OLD));
        assert_eq!(web.row.available_digest.as_deref(), Some(INDEX));
    }

    #[test]
    fn a_tracked_container_is_compared_with_the_newer_tag_and_says_so() {
        let labels = [("tidewatch.track", "semver")];
        let observed = [container("web", "registry.example/web:1.0.0", OLD, &labels)];
        let pending = classic_targets(&observed);
        let newer = reference("registry.example/web:1.1.0");
        let remotes = Remotes {
            tracked: [("web".to_string(), Ok(Some(newer.clone())))].into(),
            manifests: [(newer.clone(), manifest(NEW))].into(),
            ..Remotes::default()
        };
        assert_eq!(asked_reference(&pending[0], &remotes), Some(&newer));
        let detections = verdicts(&pending, &observed, &remotes);
        let web = &detections[0];
        assert_eq!(web.row.status, Status::UpdateAvailable);
        assert_eq!(web.new_image.as_deref(), Some("registry.example/web:1.1.0"));
        assert!(
            web.row
                .detail
                .as_deref()
                .unwrap()
                .starts_with("tracks tags: newest is"),
            "{web:?}"
        );

        let unreadable = Remotes {
            tracked: [(
                "web".to_string(),
                Err(RemoteFailure {
                    detail: "listing tags: refused".into(),
                    deferred: false,
                }),
            )]
            .into(),
            ..Remotes::default()
        };
        assert_eq!(asked_reference(&pending[0], &unreadable), None);
        let detections = verdicts(&pending, &observed, &unreadable);
        assert_eq!(
            status_of(&detections, "web"),
            (Status::Error, Some("listing tags: refused".into()))
        );
    }

    #[test]
    fn on_the_containerd_store_a_digest_the_registry_does_not_hold_is_a_local_build() {
        let mut local = container("dev", "registry.example/app:latest", OLD, &[]);
        local.image_id = OLD.into();
        let observed = [local];
        let pending = targets(
            &observed,
            ImageStore::Containerd,
            &config(""),
            &[],
            &origin_only,
        );
        let key = ("registry.example/app".to_string(), OLD.to_string());
        let mut remotes = Remotes {
            manifests: [(reference("registry.example/app:latest"), manifest(NEW))].into(),
            held: [(key.clone(), Ok(false))].into(),
            ..Remotes::default()
        };
        let detections = verdicts(&pending, &observed, &remotes);
        assert_eq!(
            status_of(&detections, "dev").0,
            Status::Unknown,
            "{detections:?}"
        );

        remotes.held.insert(key, Ok(true));
        let detections = verdicts(&pending, &observed, &remotes);
        assert_eq!(status_of(&detections, "dev").0, Status::UpdateAvailable);
    }
}
