//! `agent.toml` text: parsed and validated, or refused with `agent.toml:LINE:COL` inside it.

use tidewatch::config::{Config, ConfigError};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        match Config::parse(text, "agent.toml") {
            Ok(_) => {}
            Err(ConfigError::Invalid {
                file, line, col, ..
            }) => {
                assert_eq!(file, "agent.toml");
                let lines: Vec<&str> = text.split('\n').collect();
                assert!((1..=lines.len()).contains(&line), "line {line}");
                let width = lines[line - 1].chars().count();
                assert!((1..=width + 1).contains(&col), "col {col}");
            }
            Err(e) => panic!("parsing text gave a read error: {e}"),
        }
    });
}
