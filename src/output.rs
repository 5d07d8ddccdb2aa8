//! Rendering results for people (aligned tables) and for scripts (JSON).

use std::fmt::Write as _;

use crate::image_ref::short_digest;
use crate::plan::detect::CheckRow;
use crate::plan::update::{Plan, Reason};
use crate::release_notes::ReleaseNotes;
use crate::report::StepResult;
use crate::state::HistoryEntry;

/// A plain aligned table: a header row, then one line per row. Columns are padded to their
/// widest cell; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 == widths.len() {
                s.push_str(cell);
            } else {
                let _ = write!(s, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// `check` as a table. A SIGNATURE column (verified, unverified, rejected) comes after
/// AVAILABLE when a `[[verify]]` rule covered some update.
pub fn check_table(rows: &[CheckRow]) -> String {
    let signed = rows.iter().any(|r| r.signature.is_some());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                r.container.clone(),
                r.image.clone(),
                r.status.as_str().to_string(),
                r.current_digest
                    .as_deref()
                    .map_or("-".into(), |d| short_digest(d).to_string()),
                r.available_digest
                    .as_deref()
                    .map_or("-".into(), |d| short_digest(d).to_string()),
            ];
            if signed {
                cells.push(r.signature.map_or("-", |s| s.as_str()).to_string());
            }
            cells.push(versions(&r.notes));
            cells.push(r.detail.clone().unwrap_or_default());
            cells
        })
        .collect();
    let mut header = vec!["CONTAINER", "IMAGE", "STATUS", "CURRENT", "AVAILABLE"];
    if signed {
        header.push("SIGNATURE");
    }
    header.extend(["VERSION", "DETAIL"]);
    let mut out = table(&header, &cells);
    out.push_str(&changes(
        rows.iter().map(|r| (r.container.as_str(), &r.notes)),
    ));
    out
}

/// `1.0.0 -> 2.0.0` (a side unknown is `?`), or `-` when neither version is known.
fn versions(notes: &ReleaseNotes) -> String {
    notes.versions().unwrap_or_else(|| "-".into())
}

/// The links to what changed, under a table: too long for a column.
fn changes<'a>(rows: impl Iterator<Item = (&'a str, &'a ReleaseNotes)>) -> String {
    let rows: Vec<Vec<String>> = rows
        .filter_map(|(container, notes)| {
            Some(vec![container.to_string(), notes.changes_url.clone()?])
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    format!("\n{}", table(&["CONTAINER", "CHANGES"], &rows))
}

fn short(d: Option<&str>) -> String {
    d.map_or("-".into(), |d| short_digest(d).to_string())
}

/// A `[[gitops]]` file's row as `check --json` gives it: a container's row with
/// `"source": "git"`.
pub fn git_row_json(row: &CheckRow) -> serde_json::Result<serde_json::Value> {
    let mut value = serde_json::to_value(row)?;
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("source".into(), "git".into());
    }
    Ok(value)
}

/// What `update --json` adds under `gitops`: per repository its rows (as `check --json` gives
/// them), the commit pushed (`commit`, `attempts`; null when none was), the images pinned
/// and, in a dry run, the diff and message it would commit.
pub fn gitops_json(
    reports: &[crate::gitops::run::RepoReport],
) -> serde_json::Result<serde_json::Value> {
    use crate::gitops::checkout::Published;
    let mut repos = Vec::with_capacity(reports.len());
    for r in reports {
        let rows = r
            .rows
            .iter()
            .map(git_row_json)
            .collect::<serde_json::Result<Vec<_>>>()?;
        let (commit, attempts) = match &r.published {
            Some(Published::Pushed { commit, attempts }) => {
                (Some(commit.as_str()), Some(*attempts))
            }
            _ => (None, None),
        };
        let pins: Vec<serde_json::Value> = r
            .pins
            .iter()
            .map(|p| {
                serde_json::json!({
                    "container": p.row,
                    "image": p.image,
                    "from_digest": p.old,
                    "to_digest": p.new,
                    "new_tag": p.tag,
                    "changes_url": p.link,
                })
            })
            .collect();
        repos.push(serde_json::json!({
            "repo": r.repo,
            "rows": rows,
            "commit": commit,
            "attempts": attempts,
            "pins": pins,
            "message": r.message,
            "diff": r.diff,
        }));
    }
    Ok(serde_json::Value::Array(repos))
}

/// What `update` did in each `[[gitops]]` repository: its rows, then the commit pushed, or
/// in a dry run the diff it would commit.
pub fn gitops_report(reports: &[crate::gitops::run::RepoReport]) -> String {
    use crate::gitops::checkout::Published;
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(out, "\ngitops {}:", r.repo);
        out.push_str(&check_table(&r.rows));
        match (&r.published, &r.diff) {
            (Some(Published::Pushed { commit, attempts }), _) => {
                let short = &commit[..commit.len().min(12)];
                let tries = if *attempts > 1 {
                    format!(" (after {} pushes: the branch moved)", attempts)
                } else {
                    String::new()
                };
                let _ = writeln!(out, "committed and pushed {short}{tries}");
            }
            (Some(Published::Unchanged), _) => out.push_str("nothing to commit\n"),
            (None, Some(diff)) if diff.is_empty() => out.push_str("nothing would be committed\n"),
            (None, Some(diff)) => {
                if let Some(message) = &r.message {
                    let _ = writeln!(out, "would commit:\n{message}");
                }
                out.push_str(diff);
            }
            (None, None) => {}
        }
    }
    out
}

/// The ordered plan of `update --dry-run` (and the start of `update`).
pub fn plan_table(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.steps.is_empty() {
        out.push_str("nothing to update\n");
    } else {
        let rows: Vec<Vec<String>> = plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                vec![
                    (i + 1).to_string(),
                    s.container.clone(),
                    s.image.clone(),
                    short(s.from_digest.as_deref()),
                    short(s.to_digest.as_deref()),
                    match &s.reason {
                        Reason::NewDigest => match &s.new_image {
                            Some(new) => format!("newer tag: {new}"),
                            None => "new digest".to_string(),
                        },
                        Reason::SharesNamespace(owner) => {
                            format!("shares the namespace of {owner}")
                        }
                        Reason::Rollback => "rollback".to_string(),
                    },
                ]
            })
            .collect();
        out.push_str(&table(
            &["#", "CONTAINER", "IMAGE", "FROM", "TO", "WHY"],
            &rows,
        ));
    }
    if !plan.waiting.is_empty() {
        let rows: Vec<Vec<String>> = plan
            .waiting
            .iter()
            .map(|w| {
                vec![
                    w.container.clone(),
                    short(Some(&w.to_digest)),
                    w.reason.to_string(),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&["WAITING", "DIGEST", "WHY"], &rows));
    }
    out
}

/// What `update` did.
pub fn results_table(recovered: &[StepResult], results: &[StepResult]) -> String {
    let rows: Vec<Vec<String>> = recovered
        .iter()
        .chain(results)
        .map(|r| {
            vec![
                r.container.clone(),
                r.outcome.to_string(),
                short(r.from_digest.as_deref()),
                short(r.to_digest.as_deref()),
                versions(&r.notes),
                r.detail.clone(),
            ]
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n");
    out.push_str(&table(
        &["CONTAINER", "OUTCOME", "FROM", "TO", "VERSION", "DETAIL"],
        &rows,
    ));
    out.push_str(&changes(
        recovered
            .iter()
            .chain(results)
            .map(|r| (r.container.as_str(), &r.notes)),
    ));
    out
}

/// `history` as a table, newest first.
pub fn history_table(entries: &[HistoryEntry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                e.container.clone(),
                e.outcome.to_string(),
                short(e.from_digest.as_deref()),
                short(Some(&e.to_digest)),
                versions(&e.notes),
                e.reason.clone(),
            ]
        })
        .collect();
    table(
        &[
            "WHEN (UTC)",
            "CONTAINER",
            "OUTCOME",
            "FROM",
            "TO",
            "VERSION",
            "REASON",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::detect::{Signature, Status};

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["A", "BB"],
            &[
                vec!["long-name".into(), "x".into()],
                vec!["s".into(), "y".into()],
            ],
        );
        assert_eq!(t, "A          BB\nlong-name  x\ns          y\n");
    }

    #[test]
    fn check_table_shows_short_digests_and_dashes() {
        let t = check_table(&[CheckRow {
            container: "web".into(),
            image: "app:1".into(),
            current_digest: Some("sha256:0123456789abcdef".into()),
            available_digest: None,
            status: Status::Error,
            detail: Some("registry down".into()),
            notes: Default::default(),
            signature: None,
        }]);
        assert!(t.contains("sha256:0123456789ab  -"), "{t}");
        assert!(t.contains("error"), "{t}");
        assert!(!t.contains("CHANGES"), "no links, no list of them: {t}");
    }

    #[test]
    fn check_table_has_a_signature_column_when_a_rule_covered_an_update() {
        let row = |container: &str, status, signature| CheckRow {
            container: container.into(),
            image: "app:1".into(),
            current_digest: Some("sha256:0123456789abcdef".into()),
            available_digest: Some("sha256:fedcba9876543210".into()),
            status,
            detail: None,
            notes: Default::default(),
            signature,
        };
        let t = check_table(&[
            row("web", Status::UpdateAvailable, Some(Signature::Verified)),
            row("api", Status::Error, Some(Signature::Rejected)),
            row("db", Status::UpToDate, None),
        ]);
        let cells: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(cells[0][5], "SIGNATURE", "{t}");
        assert_eq!(cells[1][5], "verified", "{t}");
        assert_eq!(cells[2][5], "rejected", "{t}");
        assert_eq!(cells[3][5], "-", "{t}");
    }

    #[test]
    fn a_git_row_is_a_check_row_with_source_git() {
        let row = CheckRow {
            container: "stacks/web/compose.yaml#web".into(),
            image: "app:1".into(),
            current_digest: None,
            available_digest: Some("sha256:fedcba9876543210".into()),
            status: Status::UpdateAvailable,
            detail: None,
            notes: Default::default(),
            signature: None,
        };
        let value = git_row_json(&row).unwrap();
        assert_eq!(value["source"], "git");
        assert_eq!(value["container"], "stacks/web/compose.yaml#web");
        assert_eq!(value["status"], "update_available");
        assert!(serde_json::to_value(&row).unwrap().get("source").is_none());
    }

    #[test]
    fn check_table_shows_versions_in_a_column_and_links_below() {
        let row = |container: &str, notes: ReleaseNotes| CheckRow {
            container: container.into(),
            image: "app:1".into(),
            current_digest: Some("sha256:0123456789abcdef".into()),
            available_digest: Some("sha256:fedcba9876543210".into()),
            status: Status::UpdateAvailable,
            detail: None,
            notes,
            signature: None,
        };
        let t = check_table(&[
            row(
                "web",
                ReleaseNotes {
                    current_version: Some("1.0.0".into()),
                    available_version: Some("2.0.0".into()),
                    changes_url: Some("https://github.com/acme/app/compare/a...b".into()),
                },
            ),
            row("db", ReleaseNotes::default()),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "CONTAINER",
                "IMAGE",
                "STATUS",
                "CURRENT",
                "AVAILABLE",
                "VERSION",
                "DETAIL"
            ],
            "{t}"
        );
        assert!(
            lines[1].ends_with("sha256:fedcba987654  1.0.0 -> 2.0.0"),
            "{t}"
        );
        assert!(lines[2].ends_with("sha256:fedcba987654  -"), "{t}");
        assert_eq!(
            &lines[3..],
            [
                "",
                "CONTAINER  CHANGES",
                "web        https://github.com/acme/app/compare/a...b"
            ],
            "{t}"
        );
    }
}
