//! Pure: a repository's scanned files and the registry's digests in; its rows (shaped like a
//! container's `check` rows), the new text of each file to change and the commit message out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::yaml::{self, FoundImage, RowError, ScanError};
use crate::config::{GitopsConfig, Policy, ServiceConfig, WatchConfig};
use crate::image_ref::{short_digest, ImageRef};
use crate::plan::detect::{policy_for, CheckRow, Status};
use crate::plan::track::{self, Track, TRACK_LABEL};

/// One matched file as read from the working copy.
#[derive(Debug, Clone)]
pub struct ScannedFile {
    /// Repository-relative path.
    pub path: String,
    /// Its text.
    pub text: String,
    /// What [`yaml::scan`] found in it.
    pub found: Result<Vec<Result<FoundImage, RowError>>, ScanError>,
}

impl ScannedFile {
    /// Reads `text` as `path`.
    pub fn scan(path: &str, text: String) -> ScannedFile {
        let found = yaml::scan(path, &text);
        ScannedFile {
            path: path.to_string(),
            text,
            found,
        }
    }
}

/// What the registry said a tag points to now: its digest, or why it could not say.
pub type Lookups = HashMap<ImageRef, Result<String, String>>;

/// For an image with a `tidewatch.track` label, keyed by its tag reference and the label's
/// value: the newer tag it moves to (`None`: it stays), or why that could not be told.
pub type Moves = HashMap<(ImageRef, String), Result<Option<String>, String>>;

/// The images that follow a tag policy: their tag reference and `tidewatch.track` value, once
/// each (not ignored, not `digest`, which is the default).
pub fn tracked(
    files: &[ScannedFile],
    watch: &WatchConfig,
    services: &BTreeMap<String, ServiceConfig>,
) -> BTreeSet<(ImageRef, String)> {
    found_images(files)
        .filter(|f| policy_for(&f.row, &f.labels, watch, services) != Policy::Ignore)
        .filter_map(|f| {
            let label = f.labels.get(TRACK_LABEL)?;
            match track::parse(label) {
                Ok(Track::Digest) => None,
                _ => Some((asked(&f.reference)?, label.clone())),
            }
        })
        .collect()
}

/// Every image read without error.
fn found_images(files: &[ScannedFile]) -> impl Iterator<Item = &FoundImage> {
    files
        .iter()
        .filter_map(|f| f.found.as_ref().ok())
        .flatten()
        .filter_map(|r| r.as_ref().ok())
}

/// The tag reference `image` follows now: its own, or the newer one its tag policy moved to
/// (with that tag).
type Followed = Option<(ImageRef, Option<String>)>;

fn followed(image: &FoundImage, moves: &Moves) -> Result<Followed, String> {
    let Some(own) = asked(&image.reference) else {
        return Ok(None);
    };
    let Some(label) = image.labels.get(TRACK_LABEL) else {
        return Ok(Some((own, None)));
    };
    match moves.get(&(own.clone(), label.clone())) {
        Some(Err(why)) => Err(why.clone()),
        Some(Ok(Some(tag))) => Ok(Some((own.with_tag(tag), Some(tag.clone())))),
        Some(Ok(None)) | None => Ok(Some((own, None))),
    }
}

/// The detail of a row whose new digest is reported, not written (`tidewatch.policy: notify`).
pub const NOTIFY_ONLY: &str = "policy notify";

/// One image pinned to a new digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The row (`<file>#<service>`...).
    pub row: String,
    /// The reference as the file had it.
    pub image: String,
    /// The digest it was pinned to before, if any.
    pub old: Option<String>,
    /// The digest it is pinned to now.
    pub new: String,
    /// The tag it moved to, when its tag policy moved it.
    pub tag: Option<String>,
    /// Where to read what changed, when the images' labels say.
    pub link: Option<String>,
}

/// What one repository's cycle decides.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// One row per image found (and one per file that could not be read).
    pub rows: Vec<CheckRow>,
    /// The files to rewrite: path -> new text.
    pub edits: BTreeMap<String, String>,
    /// The images pinned, in row order.
    pub pins: Vec<Pin>,
}

/// The tag references to ask the registry about: one per unique reference among the images
/// that are not ignored (a digest without a tag has nothing to follow).
/// With `moves`, an image whose tag policy moved asks for its new tag instead.
pub fn wanted(
    files: &[ScannedFile],
    moves: &Moves,
    watch: &WatchConfig,
    services: &BTreeMap<String, ServiceConfig>,
) -> BTreeSet<ImageRef> {
    found_images(files)
        .filter(|f| policy_for(&f.row, &f.labels, watch, services) != Policy::Ignore)
        .filter_map(|f| followed(f, moves).ok().flatten().map(|(r, _)| r))
        .collect()
}

/// The tag reference a file's image follows, if it has a tag.
fn asked(reference: &str) -> Option<ImageRef> {
    let parsed = ImageRef::parse(reference).ok()?;
    parsed.tag().map(|t| parsed.with_tag(t))
}

/// Decides every row of a repository from its files and `lookups`.
pub fn decide(
    files: &[ScannedFile],
    lookups: &Lookups,
    moves: &Moves,
    watch: &WatchConfig,
    services: &BTreeMap<String, ServiceConfig>,
) -> Decision {
    decide_except(files, lookups, moves, watch, services, &BTreeSet::new())
}

/// [`decide`], pinning none of the rows named in `held` (a `[[verify]]` rule refused their
/// new digest): they keep their verdict and their file keeps its bytes.
pub fn decide_except(
    files: &[ScannedFile],
    lookups: &Lookups,
    moves: &Moves,
    watch: &WatchConfig,
    services: &BTreeMap<String, ServiceConfig>,
    held: &BTreeSet<String>,
) -> Decision {
    let mut decision = Decision::default();
    for file in files {
        let found = match &file.found {
            Ok(found) => found,
            Err(e) => {
                decision.rows.push(error_row(&file.path, e.to_string()));
                continue;
            }
        };
        let mut file_rows = Vec::new();
        let mut file_pins = Vec::new();
        let mut sites = Vec::new();
        for item in found {
            let image = match item {
                Ok(image) => image,
                Err(e) => {
                    file_rows.push(error_row(&e.row, e.to_string()));
                    continue;
                }
            };
            let (mut r, pin) = verdict(image, lookups, moves, watch, services);
            if let Some(pin) = pin.filter(|p| !held.contains(&p.row)) {
                let text = yaml::pinned(&image.reference, &pin.new, pin.tag.as_deref());
                sites.push((image.site.clone(), text));
                file_pins.push(pin);
                r.detail = None;
            }
            file_rows.push(r);
        }
        if !sites.is_empty() {
            match yaml::pin(&file.text, &sites) {
                Ok(text) if text != file.text => {
                    decision.edits.insert(file.path.clone(), text);
                    decision.pins.append(&mut file_pins);
                }
                Ok(_) => {}
                Err(e) => {
                    let pinned: BTreeSet<&str> = file_pins.iter().map(|p| p.row.as_str()).collect();
                    for r in &mut file_rows {
                        if pinned.contains(r.container.as_str()) {
                            r.status = Status::Error;
                            r.detail = Some(format!("{}: cannot pin: {e}", file.path));
                        }
                    }
                }
            }
        }
        decision.rows.append(&mut file_rows);
    }
    decision
}

/// One image's row, and its pin when the policy lets it be written.
fn verdict(
    image: &FoundImage,
    lookups: &Lookups,
    moves: &Moves,
    watch: &WatchConfig,
    services: &BTreeMap<String, ServiceConfig>,
) -> (CheckRow, Option<Pin>) {
    let current = ImageRef::parse(&image.reference)
        .ok()
        .and_then(|r| r.digest().map(str::to_string));
    let at = |status, detail: &str| {
        row(
            &image.row,
            &image.reference,
            current.clone(),
            None,
            status,
            Some(detail.to_string()),
        )
    };
    let policy = policy_for(&image.row, &image.labels, watch, services);
    if policy == Policy::Ignore {
        return (at(Status::Skipped, "policy ignore"), None);
    }
    let (tag, moved) = match followed(image, moves) {
        Ok(Some(followed)) => followed,
        Ok(None) => {
            return (
                at(Status::Skipped, "pinned to a digest with no tag to follow"),
                None,
            );
        }
        Err(why) => return (at(Status::Error, &why), None),
    };
    let available = match lookups.get(&tag) {
        Some(Ok(digest)) => digest.clone(),
        Some(Err(why)) => return (at(Status::Error, why), None),
        None => return (at(Status::Unknown, "not looked up"), None),
    };
    let mut r = at(Status::UpToDate, "");
    r.detail = None;
    r.available_digest = Some(available.clone());
    if current.as_deref() == Some(available.as_str()) && moved.is_none() {
        return (r, None);
    }
    r.status = Status::UpdateAvailable;
    if policy == Policy::Notify {
        r.detail = Some(NOTIFY_ONLY.into());
        return (r, None);
    }
    let pin = Pin {
        row: image.row.clone(),
        image: image.reference.clone(),
        old: current,
        new: available,
        tag: moved,
        link: None,
    };
    (r, Some(pin))
}

/// The row of something that could not be read at all (a file, a repository): `name` and why.
pub fn error_row(name: &str, detail: String) -> CheckRow {
    row(name, "", None, None, Status::Error, Some(detail))
}

fn row(
    name: &str,
    image: &str,
    current: Option<String>,
    available: Option<String>,
    status: Status,
    detail: Option<String>,
) -> CheckRow {
    CheckRow {
        container: name.to_string(),
        image: image.to_string(),
        current_digest: current,
        available_digest: available,
        status,
        detail,
        notes: Default::default(),
        signature: None,
    }
}

/// The commit message: the table's subject template filled in, then one line per pin with its
/// old and new digest.
pub fn message(config: &GitopsConfig, pins: &[Pin]) -> String {
    let images: BTreeSet<String> = pins
        .iter()
        .map(|p| {
            let name = ImageRef::parse(&p.image)
                .map(|r| r.repository().to_string())
                .unwrap_or_else(|_| p.image.clone());
            name.rsplit('/').next().unwrap_or(&name).to_string()
        })
        .collect();
    let subject = config
        .message
        .replace("{count}", &pins.len().to_string())
        .replace(
            "{images}",
            &images.into_iter().collect::<Vec<_>>().join(", "),
        )
        .replace("{branch}", &config.branch);
    let mut body = String::new();
    for p in pins {
        let old = p.old.as_deref().map_or("(no digest)", short_digest);
        let tag = p
            .tag
            .as_deref()
            .map(|t| format!(" (tag {t})"))
            .unwrap_or_default();
        body.push_str(&format!(
            "\n- {}: {}\n  {old} -> {}{tag}",
            p.row,
            p.image,
            short_digest(&p.new)
        ));
        if let Some(link) = &p.link {
            body.push_str(&format!("\n  {link}"));
        }
    }
    format!("{subject}\n{body}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    const COMPOSE: &str = "services:\n  web:\n    image: \"registry.lan:5000/app:stable\"  # web\n  \
        api:\n    image: registry.lan:5000/app:stable@sha256:1111111111111111111111111111111111111111111111111111111111111111\n  \
        old:\n    image: registry.lan:5000/old:1\n    labels:\n      tidewatch.policy: ignore\n  \
        watched:\n    image: registry.lan:5000/old:2\n    labels: [\"tidewatch.policy=notify\"]\n  \
        fixed:\n    image: registry.lan:5000/app@sha256:1111111111111111111111111111111111111111111111111111111111111111\n";

    fn files() -> Vec<ScannedFile> {
        vec![
            ScannedFile::scan("a/compose.yaml", COMPOSE.to_string()),
            ScannedFile::scan("b/compose.yaml", "services: [\n".to_string()),
        ]
    }

    fn lookups(app: &str) -> Lookups {
        let mut l = Lookups::new();
        l.insert(
            ImageRef::parse("registry.lan:5000/app:stable").unwrap(),
            Ok(app.to_string()),
        );
        l.insert(
            ImageRef::parse("registry.lan:5000/old:2").unwrap(),
            Err("registry.lan:5000: unreachable".to_string()),
        );
        l
    }

    #[test]
    fn one_lookup_per_reference_and_none_for_ignored_or_digest_only_images() {
        let config = Config::default();
        let wanted = wanted(&files(), &Moves::new(), &config.watch, &config.services);
        let names: Vec<String> = wanted.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            ["registry.lan:5000/app:stable", "registry.lan:5000/old:2"]
        );
    }

    #[test]
    fn a_new_digest_is_pinned_in_the_file_and_every_row_says_why() {
        let config = Config::default();
        let d = decide(
            &files(),
            &lookups(NEW),
            &Moves::new(),
            &config.watch,
            &config.services,
        );
        let rows: Vec<(&str, Status, Option<&str>)> = d
            .rows
            .iter()
            .map(|r| (r.container.as_str(), r.status, r.detail.as_deref()))
            .collect();
        assert_eq!(
            rows,
            [
                ("a/compose.yaml#web", Status::UpdateAvailable, None),
                ("a/compose.yaml#api", Status::UpdateAvailable, None),
                ("a/compose.yaml#old", Status::Skipped, Some("policy ignore")),
                (
                    "a/compose.yaml#watched",
                    Status::Error,
                    Some("registry.lan:5000: unreachable")
                ),
                (
                    "a/compose.yaml#fixed",
                    Status::Skipped,
                    Some("pinned to a digest with no tag to follow")
                ),
                (
                    "b/compose.yaml",
                    Status::Error,
                    d.rows[5]
                        .detail
                        .as_deref()
                        .filter(|e| e.starts_with("b/compose.yaml:2:1: "))
                ),
            ]
        );
        assert_eq!(d.rows[1].current_digest.as_deref(), Some(OLD));
        assert_eq!(d.rows[1].available_digest.as_deref(), Some(NEW));
        let expected = COMPOSE
            .replace(
                "\"registry.lan:5000/app:stable\"",
                &format!("\"registry.lan:5000/app:stable@{NEW}\""),
            )
            .replace(&format!("app:stable@{OLD}"), &format!("app:stable@{NEW}"));
        assert_eq!(d.edits["a/compose.yaml"], expected);
        assert_eq!(d.edits.len(), 1);
        assert_eq!(
            d.pins
                .iter()
                .map(|p| (p.row.as_str(), p.old.as_deref()))
                .collect::<Vec<_>>(),
            [
                ("a/compose.yaml#web", None),
                ("a/compose.yaml#api", Some(OLD))
            ]
        );
    }

    #[test]
    fn notify_reports_without_writing_and_the_same_digest_writes_nothing() {
        let config = Config::default();
        let mut l = lookups(OLD);
        l.insert(
            ImageRef::parse("registry.lan:5000/old:2").unwrap(),
            Ok(NEW.to_string()),
        );
        let d = decide(&files(), &l, &Moves::new(), &config.watch, &config.services);
        let watched = &d.rows[3];
        assert_eq!(
            (watched.status, watched.detail.as_deref()),
            (Status::UpdateAvailable, Some("policy notify"))
        );
        assert_eq!(d.rows[1].status, Status::UpToDate);
        // web has no digest yet, so it is pinned to the current one.
        assert_eq!(d.pins.len(), 1);
        assert_eq!(d.pins[0].row, "a/compose.yaml#web");
    }

    #[test]
    fn a_tag_policy_moves_the_tag_and_pins_the_new_tags_digest() {
        let config = Config::default();
        let text = "services:\n  api:\n    image: registry.lan:5000/api:1.0  # semver\n    labels:\n      tidewatch.track: semver\n  bad:\n    image: registry.lan:5000/bad:1.0\n    labels:\n      tidewatch.track: semver\n";
        let files = vec![ScannedFile::scan("c.yaml", text.to_string())];
        let api = ImageRef::parse("registry.lan:5000/api:1.0").unwrap();
        let bad = ImageRef::parse("registry.lan:5000/bad:1.0").unwrap();
        assert_eq!(
            tracked(&files, &config.watch, &config.services),
            BTreeSet::from([
                (api.clone(), "semver".to_string()),
                (bad.clone(), "semver".to_string())
            ])
        );
        let mut moves = Moves::new();
        moves.insert((api.clone(), "semver".into()), Ok(Some("1.1".into())));
        moves.insert((bad, "semver".into()), Err("listing tags: 404".into()));
        let asked = wanted(&files, &moves, &config.watch, &config.services);
        assert_eq!(asked, BTreeSet::from([api.with_tag("1.1")]));
        let mut l = Lookups::new();
        l.insert(api.with_tag("1.1"), Ok(NEW.to_string()));
        let d = decide(&files, &l, &moves, &config.watch, &config.services);
        assert_eq!(
            d.edits["c.yaml"],
            text.replace("api:1.0  #", &format!("api:1.1@{NEW}  #"))
        );
        assert_eq!(d.pins[0].tag.as_deref(), Some("1.1"));
        assert_eq!(
            (d.rows[1].status, d.rows[1].detail.as_deref()),
            (Status::Error, Some("listing tags: 404"))
        );
        assert!(message(
            &Config::parse("[[gitops]]\nrepo = \"/r.git\"\nfiles = [\"*\"]\nauthor_name = \"t\"\nauthor_email = \"t@x\"\n", "a.toml").unwrap().gitops[0],
            &d.pins
        )
        .contains("(no digest) -> sha256:222222222222 (tag 1.1)"));
    }

    #[test]
    fn the_message_fills_the_template_and_lists_each_pin() {
        let config = Config::parse(
            "[[gitops]]\nrepo = \"/r.git\"\nfiles = [\"*.yaml\"]\nauthor_name = \"t\"\nauthor_email = \"t@x\"\n",
            "agent.toml",
        )
        .unwrap();
        let pins = [
            Pin {
                row: "a/compose.yaml#web".into(),
                image: "registry.lan:5000/app:stable".into(),
                old: None,
                new: NEW.into(),
                tag: None,
                link: None,
            },
            Pin {
                row: "k8s/app.yaml#Deployment/app/app".into(),
                image: format!("registry.lan:5000/team/app:stable@{OLD}"),
                old: Some(OLD.into()),
                new: NEW.into(),
                tag: None,
                link: None,
            },
        ];
        assert_eq!(
            message(&config.gitops[0], &pins),
            "tidewatch: pin 2 image(s): app\n\n\
             - a/compose.yaml#web: registry.lan:5000/app:stable\n  \
             (no digest) -> sha256:222222222222\n\
             - k8s/app.yaml#Deployment/app/app: registry.lan:5000/team/app:stable@sha256:1111111111111111111111111111111111111111111111111111111111111111\n  \
             sha256:111111111111 -> sha256:222222222222\n"
        );
    }
}
