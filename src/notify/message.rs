//! The messages themselves, built without I/O so each service's format is tested on literals:
//! a title and one line per event for people, the full events as JSON for the generic webhook.

use reqwest::Url;
use serde::Serialize;
use serde_json::json;

use super::{Event, EventKind};

/// The services spoken over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Webhook,
    Slack,
    Discord,
    Ntfy,
    Gotify,
}

/// One HTTP `POST`, less its credentials (the sender adds those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpMessage {
    pub url: Url,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Discord refuses `content` over 2000 characters.
const DISCORD_LIMIT: usize = 2000;
/// Slack truncates long messages itself, badly; its guidance is to stay under 4000.
const SLACK_LIMIT: usize = 3500;
/// ntfy turns a message over 4096 bytes into an attachment.
const NTFY_LIMIT: usize = 4000;
/// Gotify has no limit, but a phone notification of thousands of lines helps no one.
const GOTIFY_LIMIT: usize = 8000;

#[derive(Serialize)]
struct WebhookPayload<'a> {
    host: &'a str,
    events: &'a [Event],
}

/// The `POST` for `format`, to `url`, announcing `events` from `host`.
pub(crate) fn http_message(
    format: Format,
    url: &Url,
    host: &str,
    events: &[Event],
) -> Result<HttpMessage, serde_json::Error> {
    let title = title(host, events);
    let json = |value: serde_json::Value| HttpMessage {
        url: url.clone(),
        content_type: "application/json",
        headers: Vec::new(),
        body: value.to_string().into_bytes(),
    };
    Ok(match format {
        Format::Webhook => HttpMessage {
            url: url.clone(),
            content_type: "application/json",
            headers: Vec::new(),
            body: serde_json::to_vec(&WebhookPayload { host, events })?,
        },
        Format::Slack => {
            let title = self::title(&slack_escape(host), events);
            let body = body_with(events, SLACK_LIMIT.saturating_sub(title.len()), &SLACK);
            json(json!({ "text": format!("*{title}*\n{body}") }))
        }
        Format::Discord => {
            let title = self::title(&discord_escape(host), events);
            let body = body_with(
                events,
                DISCORD_LIMIT.saturating_sub(title.len() + 8),
                &DISCORD,
            );
            // No @everyone or role pings, whatever a container's name or an error says: the
            // text is escaped, and Discord is told to parse no mentions besides.
            json(json!({
                "content": format!("**{title}**\n{body}"),
                "allowed_mentions": { "parse": [] },
            }))
        }
        Format::Ntfy => {
            let mut headers = vec![("Title", title)];
            if is_bad_news(events) {
                headers.push(("Priority", "high".to_string()));
            }
            HttpMessage {
                url: url.clone(),
                content_type: "text/plain; charset=utf-8",
                headers,
                body: body(events, NTFY_LIMIT).into_bytes(),
            }
        }
        Format::Gotify => {
            let priority = if is_bad_news(events) { 8 } else { 5 };
            let mut message = json(json!({
                "title": title,
                "message": body(events, GOTIFY_LIMIT),
                "priority": priority,
            }));
            message.url = gotify_message_url(url);
            message
        }
    })
}

/// The subject and text of the email announcing `events` from `host`.
pub(crate) fn email_text(host: &str, events: &[Event]) -> (String, String) {
    let body = format!("{}\n\n-- \ntidewatch on {host}\n", body(events, usize::MAX));
    (title(host, events), body)
}

/// Gotify takes messages at `<base>/message`; the base may sit under a path prefix.
fn gotify_message_url(base: &Url) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    if !url.path().trim_end_matches('/').ends_with("/message") {
        let path = format!("{}/message", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    url
}

/// Failures first, so that a long message cut short still shows them.
fn severity(kind: EventKind) -> u8 {
    match kind {
        EventKind::Failed => 0,
        EventKind::Blocked => 1,
        EventKind::RolledBack => 2,
        EventKind::Updated => 3,
        EventKind::UpdateAvailable => 4,
    }
}

fn is_bad_news(events: &[Event]) -> bool {
    events.iter().any(|e| {
        matches!(
            e.event,
            EventKind::Failed | EventKind::RolledBack | EventKind::Blocked
        )
    })
}

/// `tidewatch on web1: 1 failed, 2 updated`.
pub(crate) fn title(host: &str, events: &[Event]) -> String {
    let mut kinds: Vec<EventKind> = events.iter().map(|e| e.event).collect();
    kinds.sort_by_key(|k| severity(*k));
    kinds.dedup();
    let counts: Vec<String> = kinds
        .into_iter()
        .map(|kind| {
            let n = events.iter().filter(|e| e.event == kind).count();
            match kind {
                EventKind::Failed => format!("{n} failed"),
                EventKind::RolledBack => format!("{n} rolled back"),
                EventKind::Blocked => format!("{n} blocked"),
                EventKind::Updated => format!("{n} updated"),
                EventKind::UpdateAvailable if n == 1 => "1 update available".to_string(),
                EventKind::UpdateAvailable => format!("{n} updates available"),
            }
        })
        .collect();
    format!("tidewatch on {host}: {}", counts.join(", "))
}

/// One line per event, worst first, cut to `limit` bytes with a count of what was left out.
pub(crate) fn body(events: &[Event], limit: usize) -> String {
    body_with(events, limit, &PLAIN)
}

/// How a message's text is marked up: the text that came from containers, engines and
/// registries passed through `escape` (so it cannot become markup or mentions), and a link to
/// what changed written by `link`.
pub(crate) struct Markup {
    escape: fn(&str) -> String,
    link: fn(&str) -> String,
}

/// Plain text: email, ntfy, Gotify.
pub(crate) const PLAIN: Markup = Markup {
    escape: str::to_string,
    link: |url| format!("changes: {url}"),
};
/// Slack's mrkdwn: `<url|changes>`.
const SLACK: Markup = Markup {
    escape: slack_escape,
    link: |url| format!("<{}|changes>", link_target(url, &['|', '<', '>'])),
};
/// Discord's markdown: `[changes](<url>)`, the brackets keeping Discord from embedding it.
const DISCORD: Markup = Markup {
    escape: discord_escape,
    link: |url| format!("[changes](<{}>)", link_target(url, &['<', '>', ' '])),
};

/// `url` with the characters that would end the markup around it percent-encoded. The URL
/// was checked already (`release_notes::safe_url`): http(s), no control characters.
fn link_target(url: &str, ends: &[char]) -> String {
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        if ends.contains(&c) {
            out.push_str(&format!("%{:02X}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// [`body`], marked up with `markup` before it is measured.
fn body_with(events: &[Event], limit: usize, markup: &Markup) -> String {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| severity(e.event));
    // Room for the "... and N more" line.
    let budget = limit.saturating_sub(24);
    let mut out = String::new();
    for (i, e) in sorted.iter().enumerate() {
        // A link cut short would be a broken one: it is left out of a line that is too long.
        let full = line(e, markup);
        let line = if full.len() <= budget {
            full
        } else {
            cut(line_without_link(e, markup.escape), budget)
        };
        if i > 0 && out.len() + 1 + line.len() > budget {
            out.push_str(&format!("\n... and {} more", sorted.len() - i));
            return out;
        }
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&line);
    }
    out
}

/// `text` in at most `max` bytes, cut at a character boundary.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub(3);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

/// [`line_without_link`] and, when the release notes have one, the link to what changed.
pub(crate) fn line(e: &Event, markup: &Markup) -> String {
    let mut line = line_without_link(e, markup.escape);
    if let Some(url) = &e.notes.changes_url {
        line.push(' ');
        line.push_str(&(markup.link)(url));
    }
    line
}

/// `web updated: ghcr.io/acme/web:1 sha256:c7542392269d -> sha256:c255ade3adbb version 1.0.0 ->
/// 2.0.0 (healthy)`, with the container's name, its image, the versions and the detail passed
/// through `escape`: they come from the engine, the registry and image labels, and must not
/// become a chat service's markup or mentions.
fn line_without_link(e: &Event, escape: fn(&str) -> String) -> String {
    let what = match e.event {
        EventKind::Updated => "updated",
        EventKind::RolledBack => "rolled back",
        EventKind::Failed => "failed to update",
        EventKind::UpdateAvailable => "has an update",
        EventKind::Blocked => "update blocked",
    };
    let mut line = format!("{} {what}: {}", escape(&e.container), escape(&e.image));
    match (&e.from_digest, &e.to_digest) {
        (Some(from), Some(to)) => line.push_str(&format!(" {} -> {}", short(from), short(to))),
        (None, Some(to)) => line.push_str(&format!(" -> {}", short(to))),
        (Some(from), None) => line.push_str(&format!(" {}", short(from))),
        (None, None) => {}
    }
    if let Some(versions) = e.notes.versions() {
        line.push_str(&format!(" version {}", escape(&versions)));
    }
    if !e.detail.is_empty() {
        line.push_str(&format!(" ({})", escape(&e.detail)));
    }
    line
}

/// `sha256:` and 12 hex digits, as `docker images` shows them.
fn short(digest: &str) -> String {
    match digest.strip_prefix("sha256:") {
        Some(hex) => format!("sha256:{}", hex.chars().take(12).collect::<String>()),
        None => digest.to_string(),
    }
}

/// An invisible character that keeps a markup character from pairing up.
const ZERO_WIDTH_SPACE: char = '\u{200B}';

/// Text for Slack's mrkdwn, on one line: `&`, `<` and `>` as the entities Slack asks for (so
/// `<!channel>` or `<https://evil|a link>` stay text), and `*`, `_`, `~` and `` ` `` between
/// zero-width spaces, which Slack has no escape for: a marker inside a word formats nothing.
pub(crate) fn slack_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '*' | '_' | '~' | '`' => {
                out.push(ZERO_WIDTH_SPACE);
                out.push(c);
                out.push(ZERO_WIDTH_SPACE);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text for Discord's markdown, on one line: its markup characters (`*_~`|>`, the backslash
/// itself, `<` of mentions and `[`/`]` of masked links) escaped with a backslash, and
/// `@everyone`/`@here` broken by a zero-width space, so that a registry's message cannot
/// format, link or ping.
pub(crate) fn discord_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    for mention in ["@everyone", "@here"] {
        out = out.replace(mention, &format!("@{ZERO_WIDTH_SPACE}{}", &mention[1..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(container: &str, event: EventKind) -> Event {
        Event {
            container: container.to_string(),
            image: format!("127.0.0.1:5000/{container}:latest"),
            event,
            from_digest: Some(format!("sha256:{}", "a".repeat(64))),
            to_digest: Some(format!("sha256:{}", "b".repeat(64))),
            detail: String::new(),
            notes: Default::default(),
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn body_json(m: &HttpMessage) -> serde_json::Value {
        serde_json::from_slice(&m.body).unwrap()
    }

    #[test]
    fn title_counts_each_kind_worst_first() {
        let events = [
            event("web", EventKind::Updated),
            event("api", EventKind::Updated),
            event("db", EventKind::Failed),
            event("cache", EventKind::UpdateAvailable),
        ];
        assert_eq!(
            title("box1", &events),
            "tidewatch on box1: 1 failed, 2 updated, 1 update available"
        );
    }

    #[test]
    fn line_shows_short_digests_and_the_reason() {
        let mut e = event("web", EventKind::RolledBack);
        e.detail = "new container exited with code 3".into();
        assert_eq!(
            line(&e, &PLAIN),
            "web rolled back: 127.0.0.1:5000/web:latest sha256:aaaaaaaaaaaa -> sha256:bbbbbbbbbbbb (new container exited with code 3)"
        );
    }

    #[test]
    fn a_long_body_is_cut_with_a_count_of_the_rest() {
        let events: Vec<Event> = (0..200)
            .map(|i| event(&format!("c{i:03}"), EventKind::Updated))
            .collect();
        let text = body(&events, 1000);
        assert!(text.len() <= 1000, "{}", text.len());
        assert!(text.starts_with("c000 updated"), "{text}");
        let last = text.lines().last().unwrap();
        assert!(
            last.starts_with("... and ") && last.ends_with(" more"),
            "{last}"
        );
        let shown = text.lines().count() - 1;
        assert_eq!(last, format!("... and {} more", 200 - shown));
    }

    #[test]
    fn failures_come_first_in_the_body() {
        let events = [
            event("web", EventKind::Updated),
            event("db", EventKind::Failed),
        ];
        let text = body(&events, usize::MAX);
        assert!(text.starts_with("db failed to update"), "{text}");
    }

    #[test]
    fn webhook_posts_every_event_as_json() {
        let mut e = event("web", EventKind::Updated);
        e.detail = "healthy on the new image".into();
        let m = http_message(Format::Webhook, &url("http://h/hook"), "box1", &[e]).unwrap();
        assert_eq!(m.content_type, "application/json");
        assert_eq!(
            body_json(&m),
            json!({
                "host": "box1",
                "events": [{
                    "container": "web",
                    "image": "127.0.0.1:5000/web:latest",
                    "event": "updated",
                    "from_digest": format!("sha256:{}", "a".repeat(64)),
                    "to_digest": format!("sha256:{}", "b".repeat(64)),
                    "detail": "healthy on the new image",
                }]
            })
        );
    }

    #[test]
    fn slack_gets_escaped_text() {
        let mut e = event("web", EventKind::Failed);
        e.detail = "pull <denied> & gone".into();
        let m = http_message(
            Format::Slack,
            &url("https://hooks.slack.com/services/T/B/x"),
            "box1",
            &[e],
        )
        .unwrap();
        let text = body_json(&m)["text"].as_str().unwrap().to_string();
        assert!(
            text.starts_with("*tidewatch on box1: 1 failed*\nweb failed to update"),
            "{text}"
        );
        assert!(text.contains("(pull &lt;denied&gt; &amp; gone)"), "{text}");
    }

    #[test]
    fn slack_markup_in_registry_text_is_neutralised() {
        assert_eq!(
            slack_escape("a & <!channel> > b"),
            "a &amp; &lt;!channel&gt; &gt; b"
        );
        assert_eq!(
            slack_escape("*bold* _it_ ~del~ `code`"),
            "\u{200B}*\u{200B}bold\u{200B}*\u{200B} \u{200B}_\u{200B}it\u{200B}_\u{200B} \
             \u{200B}~\u{200B}del\u{200B}~\u{200B} \u{200B}`\u{200B}code\u{200B}`\u{200B}"
        );
        assert_eq!(slack_escape("line one\n> quoted"), "line one &gt; quoted");
        assert_eq!(slack_escape("ghcr.io/acme/web:1.2"), "ghcr.io/acme/web:1.2");
    }

    #[test]
    fn discord_markup_and_mentions_in_registry_text_are_neutralised() {
        assert_eq!(
            discord_escape(r"*b* _i_ ~~s~~ `c` ||spoiler|| > q \ <@123> [x](https://evil)"),
            r"\*b\* \_i\_ \~\~s\~\~ \`c\` \|\|spoiler\|\| \> q \\ \<@123\> \[x\](https://evil)"
        );
        assert_eq!(
            discord_escape("ping @everyone and @here"),
            "ping @\u{200B}everyone and @\u{200B}here"
        );
        assert_eq!(discord_escape("a\n# heading"), "a # heading");
        assert_eq!(
            discord_escape("ghcr.io/acme/web:1.2"),
            "ghcr.io/acme/web:1.2"
        );
    }

    #[test]
    fn chat_messages_escape_the_registry_text_but_keep_their_own_markup() {
        let mut e = event("web_1", EventKind::Failed);
        e.detail = "denied: *everyone* @everyone <!channel>".into();
        let slack = http_message(
            Format::Slack,
            &url("https://hooks.slack.com/x"),
            "box1",
            &[e.clone()],
        )
        .unwrap();
        let text = body_json(&slack)["text"].as_str().unwrap().to_string();
        assert!(
            text.starts_with(
                "*tidewatch on box1: 1 failed*\nweb\u{200B}_\u{200B}1 failed to update: "
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "(denied: \u{200B}*\u{200B}everyone\u{200B}*\u{200B} @everyone &lt;!channel&gt;)"
            ),
            "{text}"
        );

        let discord = http_message(
            Format::Discord,
            &url("https://discord.com/api/webhooks/1/x"),
            "box1",
            &[e],
        )
        .unwrap();
        let content = body_json(&discord)["content"].as_str().unwrap().to_string();
        assert!(
            content.starts_with("**tidewatch on box1: 1 failed**\nweb\\_1 failed to update: "),
            "{content}"
        );
        assert!(
            content.ends_with("(denied: \\*everyone\\* @\u{200B}everyone \\<!channel\\>)"),
            "{content}"
        );
    }

    #[test]
    fn a_link_that_does_not_fit_is_left_out_rather_than_cut() {
        let mut e = event("web", EventKind::Updated);
        e.notes.available_version = Some("2.0.0".into());
        e.notes.changes_url = Some(format!("https://example.com/{}", "a".repeat(1990)));
        let m = http_message(
            Format::Discord,
            &url("https://discord.com/api/webhooks/1/x"),
            "box1",
            &[e.clone()],
        )
        .unwrap();
        let content = body_json(&m)["content"].as_str().unwrap().to_string();
        assert!(content.chars().count() <= 2000, "{}", content.len());
        assert!(!content.contains("changes"), "{content}");
        assert!(content.ends_with("version ? -\\> 2.0.0"), "{content}");

        let slack = line(&e, &SLACK);
        assert!(
            slack.ends_with("aaaa|changes>"),
            "fits Slack's line: {slack}"
        );
    }

    #[test]
    fn discord_stays_under_its_limit_and_pings_no_one() {
        // Underscores, escaped, take two characters each: the limit still holds.
        let events: Vec<Event> = (0..100)
            .map(|i| event(&format!("container_{i}"), EventKind::Updated))
            .collect();
        let m = http_message(
            Format::Discord,
            &url("https://discord.com/api/webhooks/1/x"),
            "box1",
            &events,
        )
        .unwrap();
        let v = body_json(&m);
        let content = v["content"].as_str().unwrap();
        assert!(content.chars().count() <= 2000, "{}", content.len());
        assert!(
            content.starts_with("**tidewatch on box1: 100 updated**\n"),
            "{content}"
        );
        assert!(content.ends_with(" more"), "{content}");
        assert_eq!(v["allowed_mentions"], json!({ "parse": [] }));
    }

    #[test]
    fn ntfy_gets_text_with_a_title_and_priority_on_failure() {
        let ok = http_message(
            Format::Ntfy,
            &url("https://ntfy.sh/ops"),
            "box1",
            &[event("web", EventKind::Updated)],
        )
        .unwrap();
        assert_eq!(ok.content_type, "text/plain; charset=utf-8");
        assert_eq!(
            ok.headers,
            vec![("Title", "tidewatch on box1: 1 updated".to_string())]
        );
        assert!(String::from_utf8(ok.body)
            .unwrap()
            .starts_with("web updated: "));

        let bad = http_message(
            Format::Ntfy,
            &url("https://ntfy.sh/ops"),
            "box1",
            &[event("web", EventKind::RolledBack)],
        )
        .unwrap();
        assert!(bad.headers.contains(&("Priority", "high".to_string())));
    }

    #[test]
    fn gotify_posts_to_message_with_title_and_priority() {
        let events = [event("web", EventKind::Failed)];
        let m = http_message(
            Format::Gotify,
            &url("https://push.example.com/gotify/"),
            "box1",
            &events,
        )
        .unwrap();
        assert_eq!(m.url.as_str(), "https://push.example.com/gotify/message");
        let v = body_json(&m);
        assert_eq!(v["title"], "tidewatch on box1: 1 failed");
        assert_eq!(v["priority"], 8);
        assert!(v["message"]
            .as_str()
            .unwrap()
            .starts_with("web failed to update"));

        for base in [
            "https://push.example.com",
            "https://push.example.com/message",
        ] {
            let m = http_message(Format::Gotify, &url(base), "box1", &events).unwrap();
            assert_eq!(m.url.as_str(), "https://push.example.com/message", "{base}");
        }
        let m = http_message(
            Format::Gotify,
            &url("https://p.example.com"),
            "b",
            &[event("web", EventKind::Updated)],
        )
        .unwrap();
        assert_eq!(body_json(&m)["priority"], 5);
    }

    #[test]
    fn email_names_every_container() {
        let events = [
            event("web", EventKind::Updated),
            event("db", EventKind::Failed),
        ];
        let (subject, text) = email_text("box1", &events);
        assert_eq!(subject, "tidewatch on box1: 1 failed, 1 updated");
        assert!(text.starts_with("db failed to update"), "{text}");
        assert!(text.contains("\nweb updated"), "{text}");
        assert!(text.ends_with("-- \ntidewatch on box1\n"), "{text}");
    }
}
