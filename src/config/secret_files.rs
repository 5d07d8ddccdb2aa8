//! Which files hold secrets, and whether users other than their owner can read them.
//!
//! Only a warning, never an error: the file works, and the fix is the admin's (`chmod go-rwx`).
//! But a token that every local user can read is a token every local process can use, so
//! `validate` prints it and the other commands log it at start-up, once per file, naming the
//! file and its mode (never its content).

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use reqwest::Url;

use super::raw::RawConfig;
use super::NotifyKind;

/// Something in the configuration that works but should be fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigWarning {
    /// A file that holds a secret can be read by its group or by everyone.
    SecretReadable {
        /// The file.
        path: PathBuf,
        /// Which secret it holds, e.g. `the password_file of registry ghcr.io`.
        holds: String,
        /// Its permission bits (`0o644`).
        mode: u32,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::SecretReadable { path, holds, mode } => {
                let who = match (mode & 0o040 != 0, mode & 0o004 != 0) {
                    (true, true) => "its group and every user",
                    (false, true) => "every user",
                    _ => "its group",
                };
                write!(
                    f,
                    "{} holds {holds} and can be read by {who} (mode {mode:04o}): `chmod go-rwx {}`",
                    path.display(),
                    path.display()
                )
            }
        }
    }
}

/// Where a configuration keeps its secrets, gathered from the file as written.
#[derive(Debug, Default)]
pub(super) struct SecretPlaces {
    /// Files that hold a secret, with which one, in file order.
    pub files: Vec<(PathBuf, String)>,
    /// The first secret written in agent.toml itself (a Slack URL, a URL with a password or a
    /// query), if any: then agent.toml is a secret file too.
    pub inline: Option<String>,
}

impl SecretPlaces {
    /// The secret files `raw` names: those the validated configuration reads.
    pub(super) fn of(raw: &RawConfig) -> SecretPlaces {
        let mut files = Vec::new();
        for r in &raw.registry {
            if let Some(file) = &r.password_file {
                files.push((
                    file.get_ref().clone(),
                    format!("the password_file of registry {}", r.host.get_ref().trim()),
                ));
            }
        }
        if let Some(key) = &raw.docker.tls_key {
            files.push((
                key.get_ref().clone(),
                "[docker] tls_key, the client's private key".to_string(),
            ));
        }
        // The API's files are read only when it listens.
        if raw.api.listen.is_some() {
            for (key, file) in [
                ("token_file", &raw.api.token_file),
                ("hook_secret_file", &raw.api.hook_secret_file),
            ] {
                if let Some(file) = file {
                    files.push((file.get_ref().clone(), format!("[api] {key}")));
                }
            }
        }
        for g in &raw.gitops {
            let repo = super::without_userinfo(g.repo.get_ref().trim());
            for (key, file) in [
                ("ssh_key_file", &g.ssh_key_file),
                ("token_file", &g.token_file),
            ] {
                if let Some(file) = file {
                    files.push((
                        file.get_ref().clone(),
                        format!("the {key} of gitops {repo}"),
                    ));
                }
            }
        }
        let mut inline = None;
        for n in &raw.notify {
            let kind = *n.kind.get_ref();
            for (key, file) in [
                ("url_file", &n.url_file),
                ("token_file", &n.token_file),
                ("password_file", &n.password_file),
            ] {
                if let Some(file) = file {
                    files.push((
                        file.get_ref().clone(),
                        format!("the {key} of a {kind} notifier"),
                    ));
                }
            }
            if let Some(url) = &n.url {
                if inline.is_none() && url_is_secret(kind, url.get_ref()) {
                    inline = Some(format!("the url of a {kind} notifier"));
                }
            }
        }
        SecretPlaces { files, inline }
    }

    /// One warning per file that a user other than its owner can read; `config` is agent.toml,
    /// which counts when it holds a secret itself. A file that cannot be looked at is passed
    /// over: validation has read it already, so that is a race not worth a second message.
    pub(super) fn warnings(&self, config: Option<&Path>) -> Vec<ConfigWarning> {
        let agent_toml = config
            .zip(self.inline.as_ref())
            .map(|(path, holds)| (path.to_path_buf(), holds.clone()));
        let mut seen: Vec<&Path> = Vec::new();
        let mut warnings = Vec::new();
        for (path, holds) in agent_toml.iter().chain(&self.files) {
            if seen.contains(&path.as_path()) {
                continue;
            }
            seen.push(path);
            if let Some(mode) = readable_by_others(path) {
                warnings.push(ConfigWarning::SecretReadable {
                    path: path.clone(),
                    holds: holds.clone(),
                    mode,
                });
            }
        }
        warnings
    }
}

/// A Slack or Discord webhook URL is the credential itself; any URL with a user, a password or
/// a query (ntfy's `?auth=`, a webhook's `?token=`) likely carries one.
fn url_is_secret(kind: NotifyKind, url: &str) -> bool {
    if matches!(kind, NotifyKind::Slack | NotifyKind::Discord) {
        return true;
    }
    Url::parse(url.trim())
        .is_ok_and(|u| !u.username().is_empty() || u.password().is_some() || u.query().is_some())
}

/// The permission bits of `path` (following a symlink, as reading it does) when its group or
/// everyone may read it.
fn readable_by_others(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o044 != 0).then_some(mode)
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;
    use std::fs;

    const TOKEN: &str = "s3cr3t-token-value-42";

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// agent.toml (mode 0600) in `dir` with `text`; returns its path.
    fn agent_toml(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("agent.toml");
        fs::write(&path, text).unwrap();
        chmod(&path, 0o600);
        path
    }

    fn warnings(path: &Path) -> Vec<String> {
        let (_, warnings) = Config::load(path).unwrap();
        warnings.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_token_file_readable_by_others_is_warned_about_once_by_name_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("gotify.token");
        fs::write(&token, format!("{TOKEN}\n")).unwrap();
        chmod(&token, 0o644);
        // The same file twice (two notifiers) is one warning.
        let config = agent_toml(
            dir.path(),
            &format!(
                "[[notify]]\nkind = \"gotify\"\nurl = \"https://push.example.com\"\ntoken_file = {token:?}\n\
                 [[notify]]\nkind = \"ntfy\"\nurl = \"https://ntfy.example.com/ops\"\ntoken_file = {token:?}\n"
            ),
        );
        let found = warnings(&config);
        assert_eq!(found.len(), 1, "{found:?}");
        let w = &found[0];
        assert!(w.starts_with(&token.display().to_string()), "{w}");
        assert!(w.contains("token_file of a gotify notifier"), "{w}");
        assert!(w.contains("mode 0644"), "{w}");
        assert!(w.contains("its group and every user"), "{w}");
        assert!(!w.contains(TOKEN), "the warning shows the secret");

        chmod(&token, 0o600);
        assert_eq!(warnings(&config), Vec::<String>::new());
        chmod(&token, 0o640);
        let found = warnings(&config);
        assert!(
            found.len() == 1 && found[0].contains("mode 0640"),
            "{found:?}"
        );
    }

    #[test]
    fn registry_password_files_and_the_api_secrets_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("ghcr.token");
        fs::write(&password, TOKEN).unwrap();
        chmod(&password, 0o604);
        let api = dir.path().join("api.token");
        fs::write(&api, "0123456789abcdef0123456789abcdef").unwrap();
        chmod(&api, 0o644);
        let config = agent_toml(
            dir.path(),
            &format!(
                "[api]\nlisten = \"127.0.0.1:8787\"\ntoken_file = {api:?}\nhook_secret_file = {api:?}\n\
                 [[registry]]\nhost = \"ghcr.io\"\nusername = \"u\"\npassword_file = {password:?}\n"
            ),
        );
        let found = warnings(&config);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].contains("password_file of registry ghcr.io")
                && found[0].contains("mode 0604")
                && found[0].contains("every user"),
            "{found:?}"
        );
        assert!(found[1].contains("[api] token_file"), "{found:?}");
    }

    #[test]
    fn agent_toml_is_a_secret_file_when_it_holds_a_secret_url() {
        let dir = tempfile::tempdir().unwrap();
        let config = agent_toml(
            dir.path(),
            "[[notify]]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T0/B0/XyZ\"\n",
        );
        assert_eq!(warnings(&config), Vec::<String>::new());
        chmod(&config, 0o644);
        let found = warnings(&config);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with(&config.display().to_string()));
        assert!(
            found[0].contains("the url of a slack notifier"),
            "{found:?}"
        );
        assert!(!found[0].contains("XyZ"), "the warning shows the secret");

        // A webhook with a token in its query is one too; a plain one is not.
        fs::write(
            &config,
            "[[notify]]\nkind = \"webhook\"\nurl = \"https://hooks.example.com/t?token=XyZ\"\n",
        )
        .unwrap();
        assert_eq!(warnings(&config).len(), 1);
        fs::write(
            &config,
            "[[notify]]\nkind = \"webhook\"\nurl = \"https://hooks.example.com/tidewatch\"\n",
        )
        .unwrap();
        assert_eq!(warnings(&config), Vec::<String>::new());
    }
}
