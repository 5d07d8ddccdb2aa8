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

    /// A `[[gitops]]` table for this repository over `file://`, on its default branch (`main`),
    /// matching the glob `files`, committing as tidewatch <tidewatch@example.org>.
    pub fn table(&self, files: &str) -> String {
        format!(
            "[[gitops]]\nrepo = \"{}\"\nfiles = [{files:?}]\n\
             author_name = \"tidewatch\"\nauthor_email = \"tidewatch@example.org\"\n",
            self.file_url()
        )
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

/// An sshd on a loopback port that lets this user in with one key: the "git server" of the
/// ssh tests. Its host key and the client's key are made fresh; killed on drop.
pub struct SshServer {
    child: std::process::Child,
    /// The port it listens on.
    pub port: u16,
    /// The user's private key that it accepts.
    pub client_key: PathBuf,
    /// A known_hosts file listing its host key for `[127.0.0.1]:port`.
    pub known_hosts: PathBuf,
    /// The user it lets in (the one running the tests).
    pub user: String,
}

/// `ssh-keygen -t ed25519` into `path` (and `path.pub`), no passphrase.
fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "tidewatch-test",
            "-f",
        ])
        .arg(path)
        .status()
        .unwrap_or_else(|e| panic!("cannot run ssh-keygen (openssh-client): {e}"));
    assert!(status.success(), "ssh-keygen failed");
}

impl SshServer {
    /// Starts sshd under `dir` on a free loopback port.
    pub fn start(dir: &Path) -> SshServer {
        std::fs::create_dir_all(dir).unwrap();
        let host_key = dir.join("host_key");
        let client_key = dir.join("client_key");
        keygen(&host_key);
        keygen(&client_key);
        let authorized = dir.join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &authorized).unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        // sshd run by root wants its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile none\n",
                host_key.display(),
                authorized.display()
            ),
        )
        .unwrap();
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("sshd is installed (openssh-server, see scripts/test-env)");
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sshd: {e}"));
        let known_hosts = dir.join("known_hosts");
        let host_pub = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
        let mut fields = host_pub.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {kind} {key}\n")).unwrap();
        let server = SshServer {
            child,
            port,
            client_key,
            known_hosts,
            user,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "sshd did not listen on {port}: {}",
                std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        server
    }

    /// `ssh://user@127.0.0.1:port/path` of a repository on this machine.
    pub fn url(&self, path: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            path.display()
        )
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
