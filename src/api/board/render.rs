//! The board's HTML, rendered from a [`StatusSnapshot`]. Every string that reaches the page
//! (container names, images, labels, registry answers, errors) goes through [`escape`]; the
//! script renders the same rows again from `/v1/status` with `textContent`.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::api::status::{RepoStatus, StatusRow, StatusSnapshot};
use crate::plan::detect::CheckRow;
use crate::state::HistoryEntry;

/// `text` safe between tags and inside a double- or single-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The first 12 hex digits of a digest (`sha256:` dropped), as people compare them.
fn short_digest(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, hex)| hex);
    hex.get(..12).unwrap_or(hex)
}

/// A time for people and, in `datetime`, for the script.
fn time(at: Option<DateTime<Utc>>) -> String {
    match at {
        Some(at) => format!(
            "<time datetime=\"{}\">{}</time>",
            at.to_rfc3339(),
            at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        None => "–".to_string(),
    }
}

/// A digest, short, with the whole one on hover; a dash when unknown.
fn digest(d: Option<&str>) -> String {
    match d {
        Some(d) => format!(
            "<code title=\"{}\">{}</code>",
            escape(d),
            escape(short_digest(d))
        ),
        None => "–".to_string(),
    }
}

/// What a badge says.
pub(crate) fn badge_label(badge: &str) -> &'static str {
    match badge {
        "up_to_date" => "up to date",
        "update_available" => "update available",
        "waiting" => "waiting",
        "quarantined" => "held",
        "error" => "error",
        "skipped" => "skipped",
        _ => "unknown",
    }
}

/// The whole page; without a snapshot (reads need the token), its tables are empty.
pub fn page(snapshot: Option<&StatusSnapshot>) -> String {
    let mut html = String::with_capacity(8 * 1024);
    html.push_str(concat!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        "<meta name=\"color-scheme\" content=\"light dark\">\n",
        "<title>tidewatch status</title>\n",
        "<link rel=\"stylesheet\" href=\"/board.css\">\n",
        "<script src=\"/board.js\" defer></script>\n</head>\n<body>\n",
        "<header>\n<h1>tidewatch</h1>\n"
    ));
    let _ = write!(
        html,
        "<p id=\"facts\">{}</p>\n</header>\n<main>\n",
        facts(snapshot)
    );
    html.push_str(concat!(
        "<section id=\"controls\" aria-label=\"Actions\" hidden>\n",
        "<form id=\"token-form\">\n<label for=\"token\">API token</label>\n",
        "<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" spellcheck=\"false\">\n",
        "<button type=\"submit\">Use token</button>\n",
        "<button type=\"button\" id=\"forget\" hidden>Forget token</button>\n</form>\n",
        "<button type=\"button\" id=\"check-now\">Check now</button>\n",
        "<p id=\"action-status\" role=\"status\" aria-live=\"polite\"></p>\n</section>\n"
    ));
    if snapshot.is_none() {
        html.push_str(
            "<p id=\"locked\">This API needs its token to show the status: enable JavaScript and enter it above.</p>\n",
        );
    }
    let _ = write!(
        html,
        "<section aria-labelledby=\"h-cycles\">\n<h2 id=\"h-cycles\">Cycles</h2>\n<dl id=\"cycles\">{}</dl>\n</section>\n",
        cycles(snapshot)
    );
    html.push_str(concat!(
        "<section aria-labelledby=\"h-containers\">\n<h2 id=\"h-containers\">Containers</h2>\n",
        "<div class=\"scroll\">\n<table id=\"containers\">\n<thead><tr>",
        "<th scope=\"col\">Container</th><th scope=\"col\">Status</th>",
        "<th scope=\"col\">Digest</th><th scope=\"col\">Version</th>",
        "<th scope=\"col\">Policy</th><th scope=\"col\">Checked</th>",
        "<th scope=\"col\">Updated</th><th scope=\"col\" class=\"js-only\">Actions</th>",
        "</tr></thead>\n<tbody id=\"rows\">\n"
    ));
    for row in snapshot
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
    {
        container_row(&mut html, row);
    }
    html.push_str("</tbody>\n</table>\n</div>\n</section>\n");
    gitops_section(
        &mut html,
        snapshot.map(|s| s.gitops.as_slice()).unwrap_or_default(),
    );
    html.push_str(concat!(
        "<section aria-labelledby=\"h-history\">\n<h2 id=\"h-history\">History</h2>\n",
        "<p class=\"js-only\"><label for=\"history-filter\">Container</label>\n",
        "<select id=\"history-filter\"><option value=\"\">all</option></select></p>\n",
        "<div class=\"scroll\">\n<table id=\"history\">\n<thead><tr>",
        "<th scope=\"col\">When</th><th scope=\"col\">Container</th>",
        "<th scope=\"col\">Outcome</th><th scope=\"col\">From → to</th>",
        "<th scope=\"col\">Took</th><th scope=\"col\">Why</th>",
        "</tr></thead>\n<tbody id=\"history-rows\">\n"
    ));
    for entry in snapshot.map(|s| s.history.as_slice()).unwrap_or_default() {
        history_row(&mut html, entry);
    }
    html.push_str("</tbody>\n</table>\n</div>\n</section>\n</main>\n</body>\n</html>\n");
    html
}

/// The `[[gitops]]` files' rows in one table, each naming its repository; hidden when there
/// are none.
fn gitops_section(html: &mut String, repos: &[RepoStatus]) {
    let _ = write!(
        html,
        concat!(
            "<section id=\"gitops-section\" aria-labelledby=\"h-gitops\"{}>\n",
            "<h2 id=\"h-gitops\">GitOps files</h2>\n",
            "<div class=\"scroll\">\n<table id=\"gitops\">\n<thead><tr>",
            "<th scope=\"col\">File row</th><th scope=\"col\">Status</th>",
            "<th scope=\"col\">Digest</th><th scope=\"col\">Version</th>",
            "<th scope=\"col\">Repository</th><th scope=\"col\">Checked</th>",
            "</tr></thead>\n<tbody id=\"gitops-rows\">\n"
        ),
        if repos.is_empty() { " hidden" } else { "" }
    );
    for repo in repos {
        for r in &repo.rows {
            let _ = write!(
                html,
                "<tr data-row=\"{name}\"><th scope=\"row\"><span class=\"name\">{name}</span><br><small class=\"image\">{image}</small></th>",
                name = escape(&r.row.container),
                image = escape(&r.row.image)
            );
            status_cells(
                html,
                r.row.status.as_str(),
                r.row.detail.as_deref(),
                None,
                &r.row,
            );
            let _ = write!(html, "<td>{}", escape(&repo.repo));
            if let Some(commit) = &repo.commit {
                let _ = write!(
                    html,
                    "<br><small>pushed <code title=\"{}\">{}</code> {}</small>",
                    escape(commit),
                    escape(commit.get(..12).unwrap_or(commit)),
                    time(repo.pushed_at)
                );
            }
            let _ = writeln!(html, "</td><td>{}</td></tr>", time(Some(repo.checked_at)));
        }
    }
    html.push_str("</tbody>\n</table>\n</div>\n</section>\n");
}

fn facts(snapshot: Option<&StatusSnapshot>) -> String {
    let Some(s) = snapshot else {
        return String::new();
    };
    let mut text = format!("tidewatch {}", escape(&s.agent.version));
    let _ = write!(text, " · up since {}", time(Some(s.agent.started_at)));
    if let Some(e) = &s.engine {
        let _ = write!(
            text,
            " · engine {} {} (API {}) at {}",
            escape(&e.flavor),
            escape(e.version.as_deref().unwrap_or("?")),
            escape(&e.api_version),
            escape(&e.host)
        );
    }
    text
}

fn cycles(snapshot: Option<&StatusSnapshot>) -> String {
    let Some(s) = snapshot else {
        return String::new();
    };
    let mut html = String::new();
    match &s.last_cycle {
        Some(c) => {
            let took = (c.finished_at - c.started_at).num_milliseconds().max(0) as f64 / 1000.0;
            let k = c.counts;
            let _ = write!(
                html,
                "<dt>Last cycle</dt><dd>{} · took {took:.1} s · {}{} · {} updated, {} rolled back, {} failed, {} skipped, {} check errors</dd>",
                time(Some(c.finished_at)),
                if c.succeeded { "succeeded" } else { "had failures" },
                s.last_cycle_requests
                    .map(|n| format!(" · {n} registry requests"))
                    .unwrap_or_default(),
                k.updated,
                k.rolled_back,
                k.failed,
                k.skipped,
                k.check_errors
            );
        }
        None => html.push_str("<dt>Last cycle</dt><dd>none yet</dd>"),
    }
    match &s.next_cycle {
        Some(n) => {
            let _ = write!(
                html,
                "<dt>Next cycle</dt><dd>{} · {}</dd>",
                time(Some(n.at)),
                escape(&n.reason)
            );
        }
        None => html.push_str("<dt>Next cycle</dt><dd>after the first cycle</dd>"),
    }
    html
}

fn container_row(html: &mut String, r: &StatusRow) {
    let _ = write!(
        html,
        "<tr data-container=\"{name}\"><th scope=\"row\"><span class=\"name\">{name}</span><br><small class=\"image\">{image}</small></th>",
        name = escape(&r.container),
        image = escape(&r.image)
    );
    status_cells(
        html,
        r.badge,
        r.badge_detail.as_deref(),
        r.waiting_until,
        &r.row,
    );
    let _ = writeln!(
        html,
        "<td>{}{}</td><td>{}</td><td>{}</td><td class=\"js-only\"></td></tr>",
        escape(r.policy.as_deref().unwrap_or("–")),
        r.window
            .as_deref()
            .map(|w| format!("<br><small>window {}</small>", escape(w)))
            .unwrap_or_default(),
        time(r.checked_at),
        time(r.updated_at)
    );
}

/// The status, digest and version cells of a row: its badge (with why, and until when), its
/// digest (→ the available one) and its version (→ the available one, with the changes link).
fn status_cells(
    html: &mut String,
    badge: &str,
    detail: Option<&str>,
    until: Option<DateTime<Utc>>,
    row: &CheckRow,
) {
    let _ = write!(
        html,
        "<td><span class=\"badge {}\">{}</span>",
        escape(badge),
        badge_label(badge)
    );
    if let Some(why) = detail {
        let _ = write!(html, "<br><small class=\"why\">{}</small>", escape(why));
    }
    if until.is_some() {
        let _ = write!(html, "<br><small>until {}</small>", time(until));
    }
    html.push_str("</td><td>");
    html.push_str(&digest(row.current_digest.as_deref()));
    if row.available_digest.is_some() && row.available_digest != row.current_digest {
        let _ = write!(html, " → {}", digest(row.available_digest.as_deref()));
    }
    html.push_str("</td><td>");
    let notes = &row.notes;
    match (&notes.current_version, &notes.available_version) {
        (Some(c), Some(a)) if c != a => {
            let _ = write!(html, "{} → {}", escape(c), escape(a));
        }
        (Some(v), _) | (None, Some(v)) => html.push_str(&escape(v)),
        (None, None) => html.push('–'),
    }
    if let Some(url) = notes.changes_url.as_deref().filter(|u| is_web_link(u)) {
        let _ = write!(
            html,
            " <a href=\"{}\" rel=\"noopener noreferrer\" target=\"_blank\">changes</a>",
            escape(url)
        );
    }
    html.push_str("</td>");
}

/// Only `http(s)://` links are made links: a `javascript:` one would run on click.
pub(crate) fn is_web_link(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

fn history_row(html: &mut String, h: &HistoryEntry) {
    let _ = writeln!(
        html,
        "<tr data-container=\"{name}\"><td>{at}</td><td>{name}</td><td><span class=\"outcome {outcome}\">{outcome}</span></td><td>{from} → {to}</td><td>{took:.1} s</td><td>{why}</td></tr>",
        at = time(Some(h.at)),
        name = escape(&h.container),
        outcome = escape(h.outcome.as_str()),
        from = digest(h.from_digest.as_deref()),
        to = digest(Some(&h.to_digest)),
        took = h.duration_ms as f64 / 1000.0,
        why = escape(&h.reason)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            escape(r#"<img src=x onerror="alert('1')">&"#),
            "&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt;&amp;"
        );
        assert_eq!(escape("web-1 ünïcode"), "web-1 ünïcode");
    }

    #[test]
    fn digests_are_shortened_to_twelve_hex_digits() {
        assert_eq!(short_digest("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short_digest("abc"), "abc");
        assert_eq!(short_digest("sha256:é"), "é");
    }

    #[test]
    fn only_web_links_are_links() {
        assert!(is_web_link("https://github.com/a/b/compare/x...y"));
        assert!(is_web_link("HTTP://example.org"));
        assert!(!is_web_link("javascript:alert(1)"));
        assert!(!is_web_link(" data:text/html,x"));
    }

    #[test]
    fn a_page_without_a_snapshot_asks_for_the_token_and_shows_no_rows() {
        let html = page(None);
        assert!(html.contains("id=\"locked\""), "{html}");
        assert!(html.contains("<tbody id=\"rows\">\n</tbody>"), "{html}");
        assert!(!html.contains("<script>"), "no inline script");
        assert!(!html.contains("style="), "no inline style");
    }

    #[test]
    fn gitops_rows_are_shown_escaped_and_their_section_hidden_without_any() {
        use crate::api::status::{GitRow, RepoStatus};
        use crate::plan::detect::Status;
        let mut snapshot = StatusSnapshot::default();
        assert!(page(Some(&snapshot))
            .contains("<section id=\"gitops-section\" aria-labelledby=\"h-gitops\" hidden>"));
        snapshot.gitops.push(RepoStatus {
            repo: "file:///srv/<deploy>.git (main)".into(),
            checked_at: Utc::now(),
            commit: Some("0123456789abcdef0123".into()),
            pushed_at: Some(Utc::now()),
            rows: vec![GitRow {
                row: CheckRow {
                    container: "stacks/web/compose.yaml#web".into(),
                    image: "registry.lan/app:stable".into(),
                    current_digest: Some("sha256:aaaaaaaaaaaaaaaa".into()),
                    available_digest: Some("sha256:bbbbbbbbbbbbbbbb".into()),
                    status: Status::UpdateAvailable,
                    detail: Some("<b>why</b>".into()),
                    notes: Default::default(),
                    signature: None,
                },
                source: "git",
            }],
        });
        let html = page(Some(&snapshot));
        assert!(
            html.contains("<section id=\"gitops-section\" aria-labelledby=\"h-gitops\">"),
            "{html}"
        );
        assert!(
            html.contains("<tr data-row=\"stacks/web/compose.yaml#web\">"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"badge update_available\">update available</span>"),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;why&lt;/b&gt;"), "{html}");
        assert!(
            html.contains("file:///srv/&lt;deploy&gt;.git (main)"),
            "{html}"
        );
        assert!(html.contains(">0123456789ab</code>"), "{html}");
        assert!(
            !html.contains("<deploy>") && !html.contains("<b>"),
            "{html}"
        );
    }
}
