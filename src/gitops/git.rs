//! Running the `git` command line: one process per step, with the credentials in its
//! environment (never in argv), a timeout that kills it and whatever it started, bounded output,
//! and errors that name the repository without its user or token.
//!
//! The `git` CLI rather than `gix` or `git2`: pushing over ssh and https with the system's ssh
//! (host keys, key types, agents all as the admin knows them) and libcurl is what git itself
//! does best; gix's push is not there yet and git2 brings libgit2, libssh2 and OpenSSL into a
//! binary that links none of them today. A process per step also gives a hard timeout for free.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::{without_userinfo, GitAuth, GitopsConfig, RepoKind};

/// How long one git process may run before it is killed.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// The most of a git process's standard output kept; more is an error.
pub const MAX_STDOUT: usize = 4 * 1024 * 1024;
/// The most of its standard error kept (the end of it goes into errors).
const MAX_STDERR: usize = 64 * 1024;
/// How much of standard error an error message quotes.
const QUOTED_STDERR: usize = 1024;

/// What went wrong talking to a repository. Every variant names it by its URL without
/// credentials.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// `git` could not be started (not installed?).
    #[error("repository {repo}: cannot run git: {source} (is git installed?)")]
    Spawn {
        /// The repository, without credentials.
        repo: String,
        /// Why.
        source: std::io::Error,
    },
    /// A step ran past [`STEP_TIMEOUT`] and was killed.
    #[error("repository {repo}: git {step} did not finish within {}s and was stopped", timeout.as_secs())]
    Timeout {
        /// The repository, without credentials.
        repo: String,
        /// `fetch`, `push`, ...
        step: &'static str,
        /// The limit it ran into.
        timeout: Duration,
    },
    /// A step exited with an error.
    #[error("repository {repo}: git {step} failed: {message}")]
    Failed {
        /// The repository, without credentials.
        repo: String,
        /// `fetch`, `push`, ...
        step: &'static str,
        /// The end of what git said, scrubbed of credentials.
        message: String,
    },
    /// A step printed more than [`MAX_STDOUT`].
    #[error("repository {repo}: git {step} printed more than {MAX_STDOUT} bytes")]
    TooMuchOutput {
        /// The repository, without credentials.
        repo: String,
        /// `ls-files`, `diff`, ...
        step: &'static str,
    },
    /// The branch was pushed to by someone else on every try.
    #[error("repository {repo}: branch {branch} moved during each of {attempts} pushes; not forced, try again next cycle")]
    KeptMoving {
        /// The repository, without credentials.
        repo: String,
        /// The branch.
        branch: String,
        /// How many pushes were rejected.
        attempts: usize,
    },
    /// A file of the working copy could not be read or written.
    #[error("repository {repo}: {path}: {source}")]
    File {
        /// The repository, without credentials.
        repo: String,
        /// The repository-relative path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What a finished git process left.
#[derive(Debug)]
pub struct Finished {
    /// Whether it exited with 0.
    pub success: bool,
    /// Its standard output (at most [`MAX_STDOUT`]).
    pub stdout: Vec<u8>,
    /// Its standard error, scrubbed of credentials.
    pub stderr: String,
}

/// Runs git in one working copy with one repository's credentials.
#[derive(Debug)]
pub struct Git {
    dir: PathBuf,
    repo: String,
    env: Vec<(String, OsString)>,
    /// Strings never to be shown (the token, the Authorization header's value).
    hidden: Vec<String>,
    timeout: Duration,
}

impl Git {
    /// Git for `config`'s repository, run in `dir`.
    pub fn new(config: &GitopsConfig, dir: &Path) -> Git {
        let mut env: Vec<(String, OsString)> = vec![
            // Messages parsed (a rejected push) and quoted are git's own, in English.
            ("LC_ALL".into(), "C".into()),
            // Never wait for a password on a terminal nobody watches.
            ("GIT_TERMINAL_PROMPT".into(), "0".into()),
            // The admin's ~/.gitconfig and /etc/gitconfig (signing, hooks paths, url rewrites,
            // credential helpers) do not apply: what the agent does depends on agent.toml only.
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
            ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
        ];
        let mut config_pairs: Vec<(String, String)> = vec![
            ("credential.helper".into(), String::new()),
            ("core.hooksPath".into(), "/dev/null".into()),
            ("commit.gpgSign".into(), "false".into()),
            ("gc.auto".into(), "0".into()),
        ];
        let mut hidden = Vec::new();
        match (&config.auth, config.repo.kind()) {
            (
                GitAuth::Ssh {
                    key_file,
                    known_hosts_file,
                },
                _,
            ) => {
                env.push((
                    "GIT_SSH_COMMAND".into(),
                    ssh_command(key_file, known_hosts_file).into(),
                ));
            }
            (GitAuth::Token { username, token }, _) => {
                let basic = base64_basic(username, token.expose());
                hidden.push(token.expose().to_string());
                hidden.push(basic.clone());
                // Through GIT_CONFIG_COUNT, so the header is in no argv (`ps` shows argv to
                // every user) and no file.
                config_pairs.push((
                    "http.extraHeader".into(),
                    format!("Authorization: Basic {basic}"),
                ));
                // git sends extra headers on every request, a redirect's too: a server that
                // redirects (or is made to) must not get the token sent to another host.
                config_pairs.push(("http.followRedirects".into(), "false".into()));
            }
            (GitAuth::None, RepoKind::Ssh) => {
                env.push((
                    "GIT_SSH_COMMAND".into(),
                    "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes".into(),
                ));
            }
            (GitAuth::None, _) => {}
        }
        env.push((
            "GIT_CONFIG_COUNT".into(),
            config_pairs.len().to_string().into(),
        ));
        for (i, (key, value)) in config_pairs.into_iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{i}"), key.into()));
            env.push((format!("GIT_CONFIG_VALUE_{i}"), value.into()));
        }
        Git {
            dir: dir.to_path_buf(),
            repo: without_userinfo(config.repo.as_git_arg()),
            env,
            hidden,
            timeout: STEP_TIMEOUT,
        }
    }

    /// The same, with another timeout (tests).
    pub fn with_timeout(mut self, timeout: Duration) -> Git {
        self.timeout = timeout;
        self
    }

    /// The repository as errors name it.
    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// Runs `git args...` with `extra_env`; a non-zero exit is returned, not an error.
    pub async fn run(
        &self,
        step: &'static str,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Result<Finished, GitError> {
        let mut command = tokio::process::Command::new("git");
        command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group, so a timeout also ends the ssh or curl helper git started.
            .process_group(0);
        for (key, _) in std::env::vars_os() {
            // Whatever GIT_* the agent was started with (GIT_DIR, GIT_TRACE_CURL, GIT_SSH,
            // GIT_ASKPASS...) must not redirect or log these steps; SSH_AUTH_SOCK would offer
            // the admin's agent keys alongside the configured one.
            if key.to_string_lossy().starts_with("GIT_") || key == "SSH_AUTH_SOCK" {
                command.env_remove(key);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command.envs(extra_env.iter().copied());
        let mut child = command.spawn().map_err(|source| GitError::Spawn {
            repo: self.repo.clone(),
            source,
        })?;
        let pid = child.id();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let work = async {
            let (out, err, status) = tokio::join!(
                read_bounded(stdout, MAX_STDOUT),
                read_bounded(stderr, MAX_STDERR),
                child.wait()
            );
            (out, err, status)
        };
        let Ok(((stdout, out_full), (stderr, _), status)) =
            tokio::time::timeout(self.timeout, work).await
        else {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) on the process group this call created; no memory involved.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            return Err(GitError::Timeout {
                repo: self.repo.clone(),
                step,
                timeout: self.timeout,
            });
        };
        let status = status.map_err(|source| GitError::Spawn {
            repo: self.repo.clone(),
            source,
        })?;
        if !out_full {
            return Err(GitError::TooMuchOutput {
                repo: self.repo.clone(),
                step,
            });
        }
        Ok(Finished {
            success: status.success(),
            stdout,
            stderr: self.scrub(&String::from_utf8_lossy(&stderr)),
        })
    }

    /// Runs `git args...`; a non-zero exit is [`GitError::Failed`]. Returns standard output.
    pub async fn ok(&self, step: &'static str, args: &[&str]) -> Result<Vec<u8>, GitError> {
        self.ok_with(step, args, &[]).await
    }

    /// [`Git::ok`] with more environment.
    pub async fn ok_with(
        &self,
        step: &'static str,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Result<Vec<u8>, GitError> {
        let done = self.run(step, args, extra_env).await?;
        if done.success {
            Ok(done.stdout)
        } else {
            Err(self.failed(step, &done.stderr))
        }
    }

    /// A [`GitError::Failed`] quoting the end of `stderr`.
    pub fn failed(&self, step: &'static str, stderr: &str) -> GitError {
        GitError::Failed {
            repo: self.repo.clone(),
            step,
            message: quoted(stderr),
        }
    }

    /// `text` without URL credentials or any of the hidden strings.
    fn scrub(&self, text: &str) -> String {
        let mut text = without_userinfo(text);
        for secret in &self.hidden {
            if !secret.is_empty() {
                text = text.replace(secret.as_str(), "<redacted>");
            }
        }
        text
    }
}

/// Reads all of `reader`, keeping at most `max` bytes; `true` when nothing was dropped. Reading
/// on past the limit keeps the process from blocking on a full pipe until the timeout.
async fn read_bounded<R: AsyncRead + Unpin>(reader: Option<R>, max: usize) -> (Vec<u8>, bool) {
    let Some(mut reader) = reader else {
        return (Vec::new(), true);
    };
    let mut kept = Vec::new();
    let mut complete = true;
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = max.saturating_sub(kept.len());
                if n > room {
                    complete = false;
                }
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    (kept, complete)
}

/// The last lines of `stderr`, at most [`QUOTED_STDERR`] bytes, on one line.
fn quoted(stderr: &str) -> String {
    let text = stderr.trim();
    let mut start = text.len().saturating_sub(QUOTED_STDERR);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = text[start..]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty());
    let joined = tail.collect::<Vec<_>>().join("; ");
    if joined.is_empty() {
        "no message".to_string()
    } else {
        joined
    }
}

/// `GIT_SSH_COMMAND` for a key and its known hosts: only that key, only those hosts, no
/// prompts, no ~/.ssh/config. The paths are quoted for the shell git runs it with.
fn ssh_command(key: &Path, known_hosts: &Path) -> String {
    format!(
        "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} \
         -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=30",
        shell_quoted(key),
        shell_quoted(known_hosts)
    )
}

fn shell_quoted(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

/// `base64(username:token)` for HTTP basic authentication.
fn base64_basic(username: &str, token: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{username}:{token}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_quotes_the_end_of_what_git_said_on_one_line() {
        assert_eq!(
            quoted("hint: a\nfatal: could not read\n\n"),
            "hint: a; fatal: could not read"
        );
        assert_eq!(quoted(""), "no message");
        let long = format!("{}é\nfatal: last", "x".repeat(3000));
        let q = quoted(&long);
        assert!(
            q.ends_with("fatal: last") && q.len() <= QUOTED_STDERR + 2,
            "{q}"
        );
    }

    #[test]
    fn the_ssh_command_pins_key_and_known_hosts_and_quotes_paths() {
        let c = ssh_command(Path::new("/etc/tw/it's key"), Path::new("/etc/tw/known"));
        assert_eq!(
            c,
            "ssh -F /dev/null -i '/etc/tw/it'\\''s key' -o IdentitiesOnly=yes \
             -o UserKnownHostsFile='/etc/tw/known' -o StrictHostKeyChecking=yes \
             -o BatchMode=yes -o ConnectTimeout=30"
        );
    }

    /// The `GIT_CONFIG_KEY_n` = `GIT_CONFIG_VALUE_n` pairs of `git`'s environment.
    fn config_pairs(git: &Git) -> Vec<(String, String)> {
        let value = |name: String| {
            git.env
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        (0..)
            .map_while(|i| Some((value(format!("GIT_CONFIG_KEY_{i}"))?, i)))
            .map(|(key, i)| {
                (
                    key,
                    value(format!("GIT_CONFIG_VALUE_{i}")).unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn with_a_token_git_follows_no_redirect() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let token = dir.path().join("token");
        std::fs::write(&token, "tok\n").expect("the token file");
        let text = format!(
            "[[gitops]]\nrepo = \"https://git.lan/ops/d.git\"\nfiles = [\"*.yaml\"]\n\
             author_name = \"tw\"\nauthor_email = \"tw@example.org\"\n\
             username = \"bot\"\ntoken_file = {:?}\n",
            token.display().to_string()
        );
        let config = crate::config::Config::parse(&text, "agent.toml")
            .unwrap_or_else(|e| panic!("{e}"))
            .gitops
            .remove(0);
        let pairs = config_pairs(&Git::new(&config, dir.path()));
        assert!(
            pairs.contains(&("http.followRedirects".into(), "false".into())),
            "{pairs:?}"
        );
        assert!(pairs
            .iter()
            .any(|(k, v)| k == "http.extraHeader" && v == "Authorization: Basic Ym90OnRvaw=="));
    }

    #[test]
    fn basic_credentials_are_base64_of_user_colon_token() {
        assert_eq!(base64_basic("bot", "tok"), "Ym90OnRvaw==");
    }

    #[tokio::test]
    async fn output_past_the_limit_is_read_and_dropped() {
        let data = vec![b'a'; 20_000];
        let (kept, complete) = read_bounded(Some(&data[..]), 1000).await;
        assert_eq!((kept.len(), complete), (1000, false));
        let (kept, complete) = read_bounded(Some(&data[..]), 20_000).await;
        assert_eq!((kept.len(), complete), (20_000, true));
    }
}
