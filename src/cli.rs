//! The command-line contract. Command, flag and exit-code names are relied on by users'
//! scripts: add, never rename.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Pull-based container update agent.
#[derive(Debug, Parser)]
#[command(name = "tidewatch", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file [default: /etc/tidewatch/agent.toml].
    #[arg(short = 'c', long = "config", env = "TIDEWATCH_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// Log level (error, warn, info, debug, trace) or a RUST_LOG-style filter; RUST_LOG wins.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,

    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration file and exit non-zero on any error.
    Validate,
    /// Show which containers have a newer image on their registry. Changes nothing.
    Check {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// Only these containers.
        names: Vec<String>,
    },
    /// One cycle now: check, plan, and recreate what changed, in dependency order.
    Update {
        /// Print the ordered plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Update even outside maintenance windows.
        #[arg(long)]
        force: bool,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Only these containers (and the sharers of their namespaces).
        names: Vec<String>,
    },
    /// The daemon: a cycle at start, then on `[agent] interval` or `schedule`.
    Run,
    /// Recreate NAME on the image it ran before its last update, and hold it there until a
    /// newer digest is pushed.
    Rollback {
        /// The container.
        name: String,
    },
    /// What was updated when, from which digest to which, and how it ended.
    History {
        /// Only this container.
        name: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// At most this many entries, newest first.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// What the daemon is doing: last and next cycle, updates available or held, recent
    /// history. Exits 1 when the last cycle had a failure.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the completion script for SHELL, e.g. `source <(tidewatch completions bash)`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (tidewatch.1, tidewatch-COMMAND.1) into DIR, for packaging.
    #[command(hide = true)]
    Man {
        /// Created if missing.
        dir: PathBuf,
    },
}
