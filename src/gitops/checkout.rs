//! One repository's working copy under `state_dir/gitops/<hash>/`: fetched shallow, reset hard
//! to the branch's tip before each use (so nothing half-written by an earlier cycle survives),
//! edited, committed by the configured author and pushed without force. A push the remote
//! rejects because the branch moved is retried on the new tip, edits re-applied, at most
//! [`MAX_PUSH_ATTEMPTS`] times.

use std::path::{Path, PathBuf};

use super::git::{Git, GitError};
use crate::config::GitopsConfig;

/// How many times a commit is pushed before the cycle gives up on the repository.
pub const MAX_PUSH_ATTEMPTS: usize = 3;
/// The largest file read from a working copy.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// The most files matched in one repository.
pub const MAX_FILES: usize = 1000;

/// A repository's working copy.
#[derive(Debug)]
pub struct Checkout {
    git: Git,
    dir: PathBuf,
    url: String,
    branch: String,
    author: (String, String),
    config: GitopsConfig,
}

/// What [`Checkout::publish`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// The edits changed nothing: no commit.
    Unchanged,
    /// One commit was pushed.
    Pushed {
        /// Its id.
        commit: String,
        /// How many pushes it took (1 unless the branch moved).
        attempts: usize,
    },
}

/// The outcome of one `git push`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Push {
    Accepted,
    /// Not a fast-forward: the branch moved since the fetch.
    Rejected,
}

impl Checkout {
    /// The working copy of `config`'s repository under `state_dir` (not touched until
    /// [`Checkout::sync`]).
    pub fn new(config: &GitopsConfig, state_dir: &Path) -> Checkout {
        let dir = working_dir(state_dir, config);
        Checkout {
            git: Git::new(config, &dir),
            dir,
            url: config.repo.as_git_arg().to_string(),
            branch: config.branch.clone(),
            author: (config.author_name.clone(), config.author_email.clone()),
            config: config.clone(),
        }
    }

    /// The same with another git step timeout (tests).
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Checkout {
        self.git = Git::new(&self.config, &self.dir).with_timeout(timeout);
        self
    }

    /// Where the working copy is.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The repository as rows and errors name it (no credentials).
    pub fn repo(&self) -> &str {
        self.git.repo()
    }

    /// Fetches the branch's tip (depth 1) and makes the working copy exactly that commit:
    /// local edits, commits and untracked files from an earlier, interrupted cycle are gone.
    /// Returns the commit id.
    pub async fn sync(&self) -> Result<String, GitError> {
        if !self.dir.join(".git").is_dir() {
            std::fs::create_dir_all(&self.dir).map_err(|source| self.file_error(".", source))?;
            self.git.ok("init", &["init", "-q"]).await?;
        }
        let refspec = format!("+refs/heads/{0}:refs/remotes/origin/{0}", self.branch);
        // The URL on the command line, not in .git/config: a changed table applies at once.
        self.git
            .ok(
                "fetch",
                &[
                    "fetch",
                    "-q",
                    "--depth=1",
                    "--no-tags",
                    "--",
                    &self.url,
                    &refspec,
                ],
            )
            .await?;
        let tracking = format!("refs/remotes/origin/{}", self.branch);
        self.git
            .ok("reset", &["reset", "-q", "--hard", &tracking])
            .await?;
        self.git
            .ok("clean", &["clean", "-q", "-f", "-d", "-x"])
            .await?;
        self.head().await
    }

    /// Drops every change since the last [`Checkout::sync`] without fetching (after a dry run).
    pub async fn discard(&self) -> Result<(), GitError> {
        self.git
            .ok("reset", &["reset", "-q", "--hard", "HEAD"])
            .await?;
        self.git
            .ok("clean", &["clean", "-q", "-f", "-d", "-x"])
            .await?;
        Ok(())
    }

    /// The commit checked out.
    pub async fn head(&self) -> Result<String, GitError> {
        let out = self.git.ok("rev-parse", &["rev-parse", "HEAD"]).await?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    /// The tracked files the table's `files` globs match, repository-relative, sorted; at most
    /// [`MAX_FILES`].
    pub async fn files(&self) -> Result<Vec<String>, GitError> {
        let out = self.git.ok("ls-files", &["ls-files", "-z"]).await?;
        let mut files: Vec<String> = out
            .split(|&b| b == 0)
            .filter_map(|name| std::str::from_utf8(name).ok())
            .filter(|name| !name.is_empty() && self.config.files.matches(name))
            .map(str::to_string)
            .collect();
        files.sort();
        files.truncate(MAX_FILES);
        Ok(files)
    }

    /// The text of a repository-relative file (at most [`MAX_FILE_BYTES`], UTF-8).
    pub fn read(&self, path: &str) -> Result<String, GitError> {
        let full = self.inside(path)?;
        let meta = std::fs::symlink_metadata(&full).map_err(|e| self.file_error(path, e))?;
        // A tracked symlink could point anywhere on this machine.
        if !meta.is_file() {
            return Err(self.file_error(path, std::io::Error::other("not a regular file")));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(self.file_error(
                path,
                std::io::Error::other(format!("larger than {MAX_FILE_BYTES} bytes")),
            ));
        }
        let bytes = std::fs::read(&full).map_err(|e| self.file_error(path, e))?;
        String::from_utf8(bytes)
            .map_err(|_| self.file_error(path, std::io::Error::other("not UTF-8 text")))
    }

    /// Replaces a repository-relative file's text.
    pub fn write(&self, path: &str, text: &str) -> Result<(), GitError> {
        let full = self.inside(path)?;
        std::fs::write(full, text).map_err(|e| self.file_error(path, e))
    }

    /// What the edits so far change, as `git diff` shows it.
    pub async fn diff(&self) -> Result<String, GitError> {
        let out = self
            .git
            .ok("diff", &["diff", "--no-color", "--no-ext-diff"])
            .await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Edits, commits and pushes. `edit` is called on a freshly synced working copy (the one
    /// [`Checkout::sync`] left, then the new tip after each rejected push) and writes its
    /// changes, returning the commit message, or `None` when there is nothing to change.
    /// On any error the working copy is left for the next [`Checkout::sync`] to reset.
    pub async fn publish<E>(
        &self,
        mut edit: impl AsyncFnMut(&Checkout) -> Result<Option<String>, E>,
    ) -> Result<Result<Published, E>, GitError> {
        for attempt in 1..=MAX_PUSH_ATTEMPTS {
            if attempt > 1 {
                self.sync().await?;
            }
            let message = match edit(self).await {
                Ok(Some(message)) => message,
                Ok(None) => return Ok(Ok(Published::Unchanged)),
                Err(e) => return Ok(Err(e)),
            };
            if !self.changed().await? {
                return Ok(Ok(Published::Unchanged));
            }
            let commit = self.commit(&message).await?;
            match self.push().await? {
                Push::Accepted => {
                    return Ok(Ok(Published::Pushed {
                        commit,
                        attempts: attempt,
                    }))
                }
                Push::Rejected => {
                    tracing::info!(
                        repo = self.repo(),
                        branch = self.branch,
                        attempt,
                        "the branch moved since the fetch: fetching it again"
                    );
                }
            }
        }
        Err(GitError::KeptMoving {
            repo: self.repo().to_string(),
            branch: self.branch.clone(),
            attempts: MAX_PUSH_ATTEMPTS,
        })
    }

    /// Whether tracked files differ from HEAD.
    async fn changed(&self) -> Result<bool, GitError> {
        let done = self
            .git
            .run("diff", &["diff", "--quiet", "--no-ext-diff"], &[])
            .await?;
        Ok(!done.success)
    }

    /// Commits every tracked change as the configured author; returns the commit id.
    async fn commit(&self, message: &str) -> Result<String, GitError> {
        let (name, email) = (&self.author.0, &self.author.1);
        let env = [
            ("GIT_AUTHOR_NAME", name.as_str()),
            ("GIT_AUTHOR_EMAIL", email.as_str()),
            ("GIT_COMMITTER_NAME", name.as_str()),
            ("GIT_COMMITTER_EMAIL", email.as_str()),
        ];
        // `--cleanup=whitespace`: the default would drop body lines that start with `#`.
        self.git
            .ok_with(
                "commit",
                &[
                    "commit",
                    "-q",
                    "-a",
                    "--no-verify",
                    "--cleanup=whitespace",
                    "-m",
                    message,
                ],
                &env,
            )
            .await?;
        self.head().await
    }

    /// Pushes HEAD to the branch, never forced.
    async fn push(&self) -> Result<Push, GitError> {
        let target = format!("HEAD:refs/heads/{}", self.branch);
        let done = self
            .git
            .run(
                "push",
                &[
                    "push",
                    "--porcelain",
                    "--no-verify",
                    "--",
                    &self.url,
                    &target,
                ],
                &[],
            )
            .await?;
        if done.success {
            return Ok(Push::Accepted);
        }
        // `--porcelain` prints `!\t<from>:<to>\t[rejected] (fetch first)` (or
        // `(non-fast-forward)`) when the branch moved; `[remote rejected]` is a hook's or a
        // protection's refusal, which another try would not change.
        let stdout = String::from_utf8_lossy(&done.stdout);
        if stdout
            .lines()
            .any(|l| l.starts_with('!') && l.contains("\t[rejected]"))
        {
            return Ok(Push::Rejected);
        }
        let said = if done.stderr.trim().is_empty() {
            stdout.into_owned()
        } else {
            done.stderr
        };
        Err(self.git.failed("push", &said))
    }

    /// `path` under the working copy, refusing anything that could leave it.
    fn inside(&self, path: &str) -> Result<PathBuf, GitError> {
        let relative = Path::new(path);
        let plain = relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain || path.is_empty() {
            return Err(self.file_error(
                path,
                std::io::Error::other("not a path inside the repository"),
            ));
        }
        Ok(self.dir.join(relative))
    }

    fn file_error(&self, path: &str, source: std::io::Error) -> GitError {
        GitError::File {
            repo: self.repo().to_string(),
            path: path.to_string(),
            source,
        }
    }
}

/// `state_dir/gitops/<first 16 hex digits of sha256(url, branch)>`: one working copy per
/// table, whatever characters its URL holds, and a new one when the URL or branch changes.
pub fn working_dir(state_dir: &Path, config: &GitopsConfig) -> PathBuf {
    let key = format!("{}\n{}", config.repo.as_git_arg(), config.branch);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    state_dir.join("gitops").join(hex)
}
