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
}
