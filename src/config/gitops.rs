//! `[[gitops]]`: a git repository whose files name images, and how to reach, commit to and
//! push to it. The token is read at start-up, so a missing file fails then; key files are only
//! checked to exist (ssh reads them). No credential appears in `Debug`, `Display` or an error.

use std::fmt;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use toml::Spanned;

use super::{raw, ConfigError, Locator, Secret};

/// The largest token file read.
const MAX_TOKEN_BYTES: u64 = 16 * 1024;

/// The placeholders a `message` template may use.
pub const MESSAGE_PLACEHOLDERS: [&str; 3] = ["{count}", "{images}", "{branch}"];

/// The subject line of a commit when no `message` is set.
pub const DEFAULT_MESSAGE: &str = "tidewatch: pin {count} image(s): {images}";

/// One `[[gitops]]` table.
#[derive(Debug, Clone)]
pub struct GitopsConfig {
    /// Its place among the tables, from 1, for messages.
    pub number: usize,
    /// Where the repository is.
    pub repo: RepoUrl,
    /// The branch read from and pushed to.
    pub branch: String,
    /// Which files are read: globs relative to the repository root.
    pub files: FilePatterns,
    /// How git authenticates.
    pub auth: GitAuth,
    /// The commits' author (and committer).
    pub author_name: String,
    /// The commits' author e-mail.
    pub author_email: String,
    /// The commit subject template (see [`MESSAGE_PLACEHOLDERS`]).
    pub message: String,
}

impl GitopsConfig {
    /// How messages and rows name it: the URL without credentials, and the branch.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.repo, self.branch)
    }
}

/// A repository location: `ssh://`, `https://`, `file://` or an absolute local path. Its
/// `Display` drops any user name, so the address can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoUrl {
    url: String,
    kind: RepoKind,
}

/// How a repository is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoKind {
    /// `ssh://`.
    Ssh,
    /// `https://`.
    Https,
    /// `file://` or a local path.
    Local,
}

impl RepoUrl {
    /// What git is given (a user name included: it is not a secret).
    pub fn as_git_arg(&self) -> &str {
        &self.url
    }

    /// Ssh, https or local.
    pub fn kind(&self) -> RepoKind {
        self.kind
    }

    /// Parses and checks a repository location; the error says what is wrong.
    pub fn parse(text: &str) -> Result<RepoUrl, String> {
        let url = text.trim();
        let kind = if let Some(rest) = url.strip_prefix("ssh://") {
            authority_checked(rest)?;
            RepoKind::Ssh
        } else if let Some(rest) = url.strip_prefix("https://") {
            authority_checked(rest)?;
            RepoKind::Https
        } else if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "repo {url:?}: a file:// URL needs an absolute path, like \"file:///srv/git/deploy.git\""
                ));
            }
            RepoKind::Local
        } else if url.starts_with('/') {
            RepoKind::Local
        } else if url.contains("://") {
            return Err(format!(
                "repo {url:?}: expected ssh://, https://, file:// or an absolute path (plain http and git:// carry no protection)"
            ));
        } else {
            return Err(format!(
                "repo {url:?}: expected ssh://host/path, https://host/path, file:///path or an absolute path (scp-style user@host:path is written ssh://user@host/path)"
            ));
        };
        if url.chars().any(char::is_control) {
            return Err("repo must not contain control characters".to_string());
        }
        Ok(RepoUrl {
            url: url.to_string(),
            kind,
        })
    }
}

/// Checks `host[:port]/path` after the scheme: a host, a path, and no password.
fn authority_checked(rest: &str) -> Result<(), String> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host =
        authority.rsplit_once('@').map_or(
            authority,
            |(user, host)| {
                if user.contains(':') {
                    ""
                } else {
                    host
                }
            },
        );
    if authority
        .rsplit_once('@')
        .is_some_and(|(user, _)| user.contains(':'))
    {
        return Err(
            "repo: a password is never written in agent.toml: use username and token_file (https) or ssh_key_file (ssh)"
                .to_string(),
        );
    }
    if host.is_empty() || host.starts_with('-') {
        return Err("repo: the URL needs a host, like \"ssh://git@git.lan/ops/deploy.git\"".into());
    }
    if path.is_empty() {
        return Err("repo: the URL needs the repository's path after the host".into());
    }
    Ok(())
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&without_userinfo(&self.url))
    }
}

impl fmt::Debug for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoUrl({self})")
    }
}

/// `text` with the `user[:password]@` taken out of every URL in it: a configured repository
/// for messages, or what git printed about one.
///
/// An authority ends at `/`, whitespace or `"`, none of which a URL's userinfo may hold
/// unencoded. Not at `'`, which userinfo may hold and git quotes URLs with: `'https://h': …`
/// keeps its quote, since there is no `@` to strip, and a `'` in a password stays hidden.
pub fn without_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"')
            .unwrap_or(after.len());
        let authority = &after[..end];
        out.push_str(
            authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host),
        );
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The `files` globs, compiled once.
#[derive(Clone)]
pub struct FilePatterns {
    patterns: Vec<String>,
    set: GlobSet,
}

impl FilePatterns {
    /// Whether the repository-relative path `path` (`/`-separated) is one of the files.
    pub fn matches(&self, path: &str) -> bool {
        self.set.is_match(path)
    }

    /// The globs as written.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

impl fmt::Debug for FilePatterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.patterns).finish()
    }
}

/// How git proves who it is.
#[derive(Debug, Clone)]
pub enum GitAuth {
    /// Nothing of tidewatch's own: a local repository, or a public one for reading.
    None,
    /// An ssh key, with the known hosts it accepts (no host is trusted on first use).
    Ssh {
        /// The private key.
        key_file: PathBuf,
        /// The `known_hosts` file that must list the server's host key.
        known_hosts_file: PathBuf,
    },
    /// HTTP basic authentication with an access token.
    Token {
        /// The user name.
        username: String,
        /// The token (its `Debug` is redacted).
        token: Secret,
    },
}

pub(super) fn validate(
    raw: Vec<raw::RawGitops>,
    at: &Locator<'_>,
) -> Result<Vec<GitopsConfig>, ConfigError> {
    let mut tables: Vec<GitopsConfig> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let span = r.repo.span();
        let table = table(i + 1, r, at)?;
        if tables
            .iter()
            .any(|t| t.repo == table.repo && t.branch == table.branch)
        {
            return Err(at.error(
                span,
                format!("[[gitops]] {} is listed twice", table.describe()),
            ));
        }
        tables.push(table);
    }
    Ok(tables)
}

fn table(number: usize, r: raw::RawGitops, at: &Locator<'_>) -> Result<GitopsConfig, ConfigError> {
    let repo = RepoUrl::parse(r.repo.get_ref()).map_err(|e| at.error(r.repo.span(), e))?;
    let branch = match &r.branch {
        Some(b) => {
            branch_checked(b.get_ref()).map_err(|e| at.error(b.span(), e))?;
            b.get_ref().clone()
        }
        None => "main".to_string(),
    };
    let files = file_patterns(&r.files, at)?;
    let auth = auth(&r, repo.kind(), at)?;
    let author_name = required(&r.author_name, "author_name", "tidewatch", &r.repo, at)?;
    let author_email = required(
        &r.author_email,
        "author_email",
        "tidewatch@example.org",
        &r.repo,
        at,
    )?;
    if let Some(email) = &r.author_email {
        if !email.get_ref().contains('@') || email.get_ref().contains(['<', '>', '\n']) {
            return Err(at.error(
                email.span(),
                format!(
                    "author_email {:?} is not an e-mail address",
                    email.get_ref()
                ),
            ));
        }
    }
    if let Some(name) = &r.author_name {
        if name.get_ref().contains(['<', '>', '\n']) {
            return Err(at.error(
                name.span(),
                "author_name must not contain <, > or a newline",
            ));
        }
    }
    let message = match &r.message {
        Some(m) => {
            message_checked(m.get_ref()).map_err(|e| at.error(m.span(), e))?;
            m.get_ref().clone()
        }
        None => DEFAULT_MESSAGE.to_string(),
    };
    Ok(GitopsConfig {
        number,
        repo,
        branch,
        files,
        auth,
        author_name,
        author_email,
        message,
    })
}

/// A non-empty value of `key`, or an error at the table's `repo` suggesting `example`.
fn required(
    value: &Option<Spanned<String>>,
    key: &str,
    example: &str,
    repo: &Spanned<String>,
    at: &Locator<'_>,
) -> Result<String, ConfigError> {
    match value {
        Some(v) if !v.get_ref().trim().is_empty() => Ok(v.get_ref().trim().to_string()),
        Some(v) => Err(at.error(v.span(), format!("{key} must not be empty"))),
        None => Err(at.error(
            repo.span(),
            format!("a [[gitops]] table needs {key}, e.g. {key} = {example:?}"),
        )),
    }
}

/// A branch name git accepts and that cannot be read as an option.
fn branch_checked(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name.starts_with(['-', '/', '.'])
        || name.ends_with(['/', '.'])
        || name.ends_with(".lock")
        || name.contains("..")
        || name.contains("//")
        || name.contains("@{")
        || name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if bad {
        return Err(format!("branch {name:?} is not a valid git branch name"));
    }
    Ok(())
}

fn file_patterns(
    files: &Spanned<Vec<Spanned<String>>>,
    at: &Locator<'_>,
) -> Result<FilePatterns, ConfigError> {
    if files.get_ref().is_empty() {
        return Err(at.error(
            files.span(),
            "files needs at least one glob, like \"stacks/*/compose.yaml\"",
        ));
    }
    let mut builder = GlobSetBuilder::new();
    let mut patterns = Vec::new();
    for p in files.get_ref() {
        let text = p.get_ref().trim();
        if text.is_empty() || text.starts_with('/') || text.split('/').any(|part| part == "..") {
            return Err(at.error(
                p.span(),
                format!(
                    "files {text:?}: a glob relative to the repository root, like \"k8s/**/*.yaml\""
                ),
            ));
        }
        // `*` stays within one directory, as in a shell; `**` crosses them.
        let glob = GlobBuilder::new(text)
            .literal_separator(true)
            .build()
            .map_err(|e| at.error(p.span(), format!("files {text:?}: {}", e.kind())))?;
        builder.add(glob);
        patterns.push(text.to_string());
    }
    let set = builder
        .build()
        .map_err(|e| at.error(files.span(), format!("files: {e}")))?;
    Ok(FilePatterns { patterns, set })
}

fn auth(r: &raw::RawGitops, kind: RepoKind, at: &Locator<'_>) -> Result<GitAuth, ConfigError> {
    let ssh = r.ssh_key_file.is_some() || r.known_hosts_file.is_some();
    let token = r.username.is_some() || r.token_file.is_some();
    if let (true, true) = (ssh, token) {
        let span = r.username.as_ref().map_or(0..0, Spanned::span);
        let span = r.token_file.as_ref().map_or(span, Spanned::span);
        return Err(at.error(
            span,
            "ssh_key_file and token_file are exclusive: ssh:// takes a key, https:// a token",
        ));
    }
    if ssh {
        let (Some(key), Some(known)) = (&r.ssh_key_file, &r.known_hosts_file) else {
            let span = r
                .ssh_key_file
                .as_ref()
                .or(r.known_hosts_file.as_ref())
                .map_or(0..0, Spanned::span);
            return Err(at.error(
                span,
                "ssh_key_file and known_hosts_file go together: the server's host key must be known, never trusted on first use",
            ));
        };
        if kind != RepoKind::Ssh {
            return Err(at.error(key.span(), "ssh_key_file is for an ssh:// repo"));
        }
        for (file, key_name) in [(key, "ssh_key_file"), (known, "known_hosts_file")] {
            std::fs::metadata(file.get_ref()).map_err(|e| {
                at.error(
                    file.span(),
                    format!("{key_name} {}: {e}", file.get_ref().display()),
                )
            })?;
        }
        return Ok(GitAuth::Ssh {
            key_file: key.get_ref().clone(),
            known_hosts_file: known.get_ref().clone(),
        });
    }
    if token {
        let (Some(username), Some(file)) = (&r.username, &r.token_file) else {
            let span = r
                .username
                .as_ref()
                .map(Spanned::span)
                .or(r.token_file.as_ref().map(Spanned::span))
                .unwrap_or(0..0);
            return Err(at.error(span, "username and token_file go together"));
        };
        if kind != RepoKind::Https {
            return Err(at.error(file.span(), "token_file is for an https:// repo"));
        }
        if username.get_ref().is_empty() || username.get_ref().contains([':', '\n']) {
            return Err(at.error(
                username.span(),
                "username must not be empty or contain ':' or a newline",
            ));
        }
        let token = read_token(file.get_ref())
            .map_err(|e| at.error(file.span(), format!("token_file {e}")))?;
        return Ok(GitAuth::Token {
            username: username.get_ref().clone(),
            token: Secret::new(token),
        });
    }
    Ok(GitAuth::None)
}

/// The token in `path`, without a trailing newline; the error names the file, never its text.
fn read_token(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{shown}: {e}"))?
        .len();
    if size > MAX_TOKEN_BYTES {
        return Err(format!("{shown}: larger than {MAX_TOKEN_BYTES} bytes"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let token = text.trim_end_matches(['\n', '\r']);
    if token.is_empty() {
        return Err(format!("{shown} is empty"));
    }
    if token.chars().any(char::is_control) {
        return Err(format!("{shown} holds more than one line"));
    }
    Ok(token.to_string())
}

/// A subject template: one line, only known placeholders.
fn message_checked(template: &str) -> Result<(), String> {
    if template.trim().is_empty() || template.contains(['\n', '\r']) {
        return Err(
            "message is the commit's subject: one non-empty line (the body lists the images)"
                .into(),
        );
    }
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').map(|c| open + c + 1);
        let Some(close) = close else {
            return Err(format!("message {template:?}: an unclosed {{"));
        };
        let placeholder = &rest[open..close];
        if !MESSAGE_PLACEHOLDERS.contains(&placeholder) {
            return Err(format!(
                "message {template:?}: unknown placeholder {placeholder}: expected {}",
                MESSAGE_PLACEHOLDERS.join(", ")
            ));
        }
        rest = &rest[close..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_url_is_shown_without_its_user() {
        let url = RepoUrl::parse("ssh://git@git.lan:2222/ops/deploy.git").unwrap();
        assert_eq!(url.to_string(), "ssh://git.lan:2222/ops/deploy.git");
        assert_eq!(url.as_git_arg(), "ssh://git@git.lan:2222/ops/deploy.git");
        assert_eq!(url.kind(), RepoKind::Ssh);
        assert_eq!(
            format!("{url:?}"),
            "RepoUrl(ssh://git.lan:2222/ops/deploy.git)"
        );
        assert_eq!(
            without_userinfo("https://bot:s3cret@git.lan/ops/deploy.git"),
            "https://git.lan/ops/deploy.git"
        );
        assert_eq!(without_userinfo("/srv/git/x.git"), "/srv/git/x.git");
    }

    #[test]
    fn credentials_in_urls_are_dropped_from_what_git_printed() {
        assert_eq!(
            without_userinfo(
                "fatal: unable to access 'https://bot:s3cret@git.lan/ops/d.git/': 403"
            ),
            "fatal: unable to access 'https://git.lan/ops/d.git/': 403"
        );
        assert_eq!(
            without_userinfo("ssh://git@h:22/x and file:///srv/x"),
            "ssh://h:22/x and file:///srv/x"
        );
        assert_eq!(
            without_userinfo("'https://bot:it's@git.lan': refused"),
            "'https://git.lan': refused"
        );
        assert_eq!(
            without_userinfo("'https://git.lan': x"),
            "'https://git.lan': x"
        );
        assert_eq!(without_userinfo("no url here"), "no url here");
    }

    #[test]
    fn repository_locations_are_checked() {
        assert_eq!(
            RepoUrl::parse("file:///srv/git/d.git").unwrap().kind(),
            RepoKind::Local
        );
        assert_eq!(
            RepoUrl::parse("/srv/git/d.git").unwrap().kind(),
            RepoKind::Local
        );
        assert_eq!(
            RepoUrl::parse("https://git.lan/ops/d.git").unwrap().kind(),
            RepoKind::Https
        );
        let password = RepoUrl::parse("https://bot:s3cret@git.lan/ops/d.git").unwrap_err();
        assert!(password.contains("never written"), "{password}");
        assert!(!password.contains("s3cret"), "{password}");
        assert!(RepoUrl::parse("http://git.lan/d.git")
            .unwrap_err()
            .contains("plain http"));
        assert!(RepoUrl::parse("git@git.lan:ops/d.git")
            .unwrap_err()
            .contains("scp-style"));
        assert!(RepoUrl::parse("file://srv/d.git")
            .unwrap_err()
            .contains("absolute"));
        assert!(RepoUrl::parse("ssh://git.lan")
            .unwrap_err()
            .contains("path"));
        assert!(RepoUrl::parse("ssh://-oProxyCommand=x/d")
            .unwrap_err()
            .contains("host"));
    }

    #[test]
    fn branch_names_that_git_refuses_or_that_read_as_options_are_refused() {
        for good in ["main", "deploy/prod", "release-1.2"] {
            assert!(branch_checked(good).is_ok(), "{good}");
        }
        for bad in [
            "", "-f", "a..b", "a b", "x.lock", "a:b", "/x", "x/", "a@{1}",
        ] {
            assert!(branch_checked(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn message_templates_know_their_placeholders() {
        assert!(message_checked(DEFAULT_MESSAGE).is_ok());
        assert!(message_checked("deploy: {count} pins on {branch}").is_ok());
        assert!(message_checked("{nope}")
            .unwrap_err()
            .contains("unknown placeholder {nope}"));
        assert!(message_checked("a {count")
            .unwrap_err()
            .contains("unclosed"));
        assert!(message_checked("two\nlines").is_err());
    }
}
