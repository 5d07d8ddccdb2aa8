//! Editing an [`Updater`]'s agent.toml for the operations tests: another `run` interval, keys
//! of the `[watch]` table, whole tables appended, and the secrets of the HTTP API.

use std::fs;
use std::path::{Path, PathBuf};

use super::cycle::Updater;
use super::objects::free_port;

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn write(path: &Path, contents: &str) {
    fs::write(path, contents)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}

/// Replaces the first occurrence of `old` in the agent.toml by `new`; panics when it is not there
/// (the bed's agent.toml changed shape).
fn replace(updater: &Updater, old: &str, new: &str) {
    let config = updater.config();
    let written = read(config);
    assert!(
        written.contains(old),
        "{} has no {old:?}; cannot tune it:\n{written}",
        config.display()
    );
    write(config, &written.replacen(old, new, 1));
}

/// Sets `[agent] interval` to `interval` (e.g. "1h"), so that only the start-up cycle and
/// triggers make cycles.
pub fn set_interval(updater: &Updater, interval: &str) {
    let written = read(updater.config());
    let line = written
        .lines()
        .find(|line| line.starts_with("interval = "))
        .unwrap_or_else(|| panic!("no interval in the agent.toml:\n{written}"))
        .to_owned();
    replace(updater, &line, &format!("interval = {interval:?}"));
}

/// Adds `line` (a key of the `[watch]` table, e.g. `min_age = "1h"`) to the `[watch]` table.
pub fn watch(updater: &Updater, line: &str) {
    replace(updater, "[watch]\n", &format!("[watch]\n{line}\n"));
}

/// Appends `toml` (whole tables: `[api]`, `[[notify]]`, ...) to the agent.toml.
pub fn append(updater: &Updater, toml: &str) {
    let config = updater.config();
    let written = read(config);
    write(config, &format!("{written}\n{toml}\n"));
}

/// The HTTP API of an agent: where it listens and the secrets it wants.
pub struct ApiSettings {
    /// "127.0.0.1:PORT".
    pub host: String,
    /// The bearer token of `POST /v1/update`.
    pub token: String,
    /// The secret of `POST /v1/hooks/registry`.
    pub hook_secret: String,
    dir: PathBuf,
}

/// Secrets for an `[api]` table in `dir` (a `token_file` and a `hook_secret_file` holding
/// another secret) and a free loopback port to listen on. Known before the agent is configured,
/// so that a registry can be told where to send its notifications.
pub fn api_settings(dir: &Path) -> ApiSettings {
    let host = format!("127.0.0.1:{}", free_port());
    let token = "test-token-0123456789abcdef".to_owned();
    let hook_secret = "test-hook-secret-fedcba9876543210".to_owned();
    // A trailing newline, as `openssl rand -hex 32 > file` writes it.
    write(&dir.join("api.token"), &format!("{token}\n"));
    write(&dir.join("hook.secret"), &format!("{hook_secret}\n"));
    ApiSettings {
        host,
        token,
        hook_secret,
        dir: dir.to_path_buf(),
    }
}

/// Gives the agent the `[api]` table of `api`.
pub fn enable_api(updater: &Updater, api: &ApiSettings) {
    append(
        updater,
        &format!(
            "[api]\nlisten = {host:?}\ntoken_file = {token:?}\nhook_secret_file = {hook:?}\n",
            host = api.host,
            token = api.dir.join("api.token").to_string_lossy(),
            hook = api.dir.join("hook.secret").to_string_lossy(),
        ),
    );
}

/// Gives the agent an `[api]` table of fresh [`api_settings`] in the agent.toml's directory.
pub fn api(updater: &Updater) -> ApiSettings {
    let dir = updater
        .config()
        .parent()
        .unwrap_or_else(|| panic!("{} has no directory", updater.config().display()));
    let api = api_settings(dir);
    enable_api(updater, &api);
    api
}

/// Gives the agent an `[api]` table on a free loopback port without `token_file` (any local
/// process may trigger a cycle, but not force one), with the keys of `extra` (lines of the
/// table, may be empty); returns the "127.0.0.1:PORT" it listens on.
pub fn open_api(updater: &Updater, extra: &str) -> String {
    let host = format!("127.0.0.1:{}", free_port());
    append(updater, &format!("[api]\nlisten = {host:?}\n{extra}"));
    host
}
