//! Real git repositories for the GitOps tests: a bare repository (the "server", reached over
//! `file://` or ssh) seeded with files, and clones of it where a test plays another person
//! pushing, or reads what tidewatch committed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `git args...` in `dir` with a fixed identity and no user or system config; panics with
/// what git said unless it succeeds. Returns standard output.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "A Person")
        .env("GIT_AUTHOR_EMAIL", "person@example.org")
        .env("GIT_COMMITTER_NAME", "A Person")
        .env("GIT_COMMITTER_EMAIL", "person@example.org")
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("cannot run git: {e}"));
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bare repository with one branch, and a clone of it to make commits from.
pub struct Remote {
    /// The bare repository.
    pub bare: PathBuf,
    /// A working clone (another person's).
    pub clone: PathBuf,
    /// The branch.
    pub branch: String,
}

impl Remote {
    /// A bare repository under `root` whose `branch` holds `files` (path, text) in one commit.
    pub fn seeded(root: &Path, branch: &str, files: &[(&str, &str)]) -> Remote {
        let bare = root.join("server.git");
        let clone = root.join("person");
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "-q", "--bare", "-b", branch]);
        std::fs::create_dir_all(&clone).unwrap();
        git(&clone, &["init", "-q", "-b", branch]);
        git(&clone, &["remote", "add", "origin", bare.to_str().unwrap()]);
        let remote = Remote {
            bare,
            clone,
            branch: branch.to_string(),
        };
        remote.commit(files, "seed");
        remote
    }

    /// `file:///…` of the bare repository.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Writes `files` in the person's clone, commits them on top of the remote's tip and pushes.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) {
        let has_branch = !git(&self.bare, &["branch", "--list", &self.branch]).is_empty();
        if has_branch {
            git(&self.clone, &["fetch", "-q", "origin"]);
            git(
                &self.clone,
                &["reset", "-q", "--hard", &format!("origin/{}", self.branch)],
            );
        }
        for (path, text) in files {
            let full = self.clone.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, text).unwrap();
            git(&self.clone, &["add", path]);
        }
        git(&self.clone, &["commit", "-q", "-m", message]);
        git(&self.clone, &["push", "-q", "origin", &self.branch]);
    }

    /// The branch's commits on the server, newest first: `(id, author email, subject)`.
    pub fn log(&self) -> Vec<(String, String, String)> {
        git(
            &self.bare,
            &["log", "--format=%H%x09%ae%x09%s", &self.branch],
        )
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, '\t');
            let mut next = || parts.next().unwrap_or_default().to_string();
            (next(), next(), next())
        })
        .collect()
    }

    /// A file's text at the branch's tip on the server.
    pub fn show(&self, path: &str) -> String {
        git(&self.bare, &["show", &format!("{}:{path}", self.branch)])
    }

    /// `git show` of a commit on the server: message and diff.
    pub fn show_commit(&self, commit: &str) -> String {
        git(&self.bare, &["show", "--format=%B", commit])
    }

    /// `git diff --numstat` between two commits on the server.
    pub fn numstat(&self, from: &str, to: &str) -> String {
        git(&self.bare, &["diff", "--numstat", from, to])
    }
}
