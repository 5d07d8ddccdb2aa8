//! The manual that ships with the binary: shell completion scripts and man pages, both generated
//! from the clap definition in [`crate::cli`], so they never disagree with what `--help` says.
//!
//! The binary writes them itself (`tidewatch completions SHELL`, `tidewatch man DIR`) rather
//! than a build script: the .deb and `install.sh` take them from the very binary they install.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory as _};
use clap_complete::Shell;
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;

use crate::cli::Cli;
use crate::config::DEFAULT_CONFIG_PATH;

/// The name the completions and pages are written for.
const BIN: &str = "tidewatch";

/// Writes the completion script for `shell` to `out`.
pub fn write_completions(shell: Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut public_command(), BIN, out);
}

/// The command as users see it. clap_complete offers hidden subcommands (`man`) too, so they are
/// left out here rather than in every shell's script.
fn public_command() -> Command {
    let full = Cli::command();
    let mut public = Command::new(BIN)
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
        .subcommand_required(full.is_subcommand_required_set());
    if let Some(about) = full.get_about() {
        public = public.about(about.clone());
    }
    public
}

/// Writes `tidewatch.1` and one `tidewatch-SUBCOMMAND.1` per visible subcommand into `dir`
/// (created if missing), uncompressed: packaging compresses them. Returns the files written,
/// `tidewatch.1` first.
pub fn write_man_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let mut top = Cli::command().disable_help_subcommand(true);
    top.build();
    let subcommands: Vec<Command> = top
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let mut written = vec![write_page(dir, &top, top_sections(&subcommands))?];
    for sub in &subcommands {
        let mut extra = Roff::new();
        see_also(&mut extra, &[BIN]);
        written.push(write_page(dir, sub, extra)?);
    }
    Ok(written)
}

/// One page: clap_mangen's sections, then `extra` (FILES, EXIT STATUS, SEE ALSO...).
fn write_page(dir: &Path, cmd: &Command, extra: Roff) -> io::Result<PathBuf> {
    let man = Man::new(cmd.clone())
        // No date, so that the pages are the same whenever they are built. clap_mangen writes an
        // empty date as nothing, which shifts the source and manual into its place on `.TH`;
        // `""` is roff's empty argument.
        .date(r#""""#)
        .source(concat!("tidewatch ", env!("CARGO_PKG_VERSION")))
        .manual("tidewatch manual");
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)?;
    // `to_roff`: `render` already wrote the preamble that `to_writer` would repeat.
    page.extend_from_slice(extra.to_roff().as_bytes());
    fs::write(&path, page)?;
    Ok(path)
}

/// What `tidewatch.1` says besides the options: where the configuration is, the environment,
/// the exit codes (part of the CLI contract) and the other pages.
fn top_sections(subcommands: &[Command]) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["FILES"]);
    roff.control("TP", []);
    roff.text([bold(DEFAULT_CONFIG_PATH)]);
    roff.text([roman(
        "The configuration, unless -c or TIDEWATCH_CONFIG names another file. When none of \
         these names a file and it does not exist, the defaults apply.",
    )]);
    roff.control("TP", []);
    roff.text([bold("/var/lib/tidewatch")]);
    roff.text([roman(
        "The state directory of the packaged service: the journal of an update in progress, \
         the history and quarantined digests.",
    )]);
    roff.control("SH", ["ENVIRONMENT"]);
    roff.control("TP", []);
    roff.text([bold("TIDEWATCH_CONFIG")]);
    roff.text([roman("The configuration file, as -c.")]);
    roff.control("TP", []);
    roff.text([bold("RUST_LOG")]);
    roff.text([roman("A log filter; it wins over --log-level.")]);
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in [
        ("0", "Success, or nothing was due."),
        (
            "1",
            "Something failed: a check row in error, an update rolled back or failed.",
        ),
        ("2", "Bad usage or configuration: nothing was done."),
    ] {
        roff.control("TP", []);
        roff.text([bold(code)]);
        roff.text([roman(meaning)]);
    }
    let names: Vec<String> = subcommands
        .iter()
        .map(|sub| format!("{BIN}-{}", sub.get_name()))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    see_also(&mut roff, &names);
    roff
}

/// Appends a SEE ALSO section naming section-1 pages.
fn see_also(roff: &mut Roff, pages: &[&str]) {
    roff.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let separator = if i + 1 == pages.len() { "(1)" } else { "(1), " };
        line.push(bold(*page));
        line.push(roman(separator));
    }
    roff.text(line);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::process::Command as Process;

    use super::*;

    /// Runs `script` in a bash that has sourced the completion script, as bash-completion does on
    /// the first <Tab> after `tidewatch`; returns its stdout.
    fn bash_with_completions(script: &str) -> String {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("tidewatch.bash");
        let mut completions = Vec::new();
        write_completions(Shell::Bash, &mut completions);
        fs::write(&path, completions).expect("writing the completion script");
        let output = Process::new("bash")
            .arg("-c")
            .arg(format!("source {} && {script}", path.display()))
            .output()
            .expect("running bash");
        assert!(
            output.status.success(),
            "bash failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 from bash")
    }

    /// What bash offers after `tidewatch WORDS...` with the cursor on the last word.
    fn completions_of(words: &[&str]) -> Vec<String> {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let script = format!(
            "COMP_WORDS=(tidewatch {words}); COMP_CWORD={cword}; \
             _tidewatch tidewatch {current} {previous}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words = quoted.join(" "),
            cword = words.len(),
            current = quoted.last().map_or("''", String::as_str),
            previous = quoted
                .len()
                .checked_sub(2)
                .map_or("tidewatch", |i| quoted[i].as_str()),
        );
        // `printf` prints one empty line for an empty COMPREPLY.
        bash_with_completions(&script)
            .lines()
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_bash_completion_loads_and_registers_for_tidewatch() {
        let registered = bash_with_completions("complete -p tidewatch");
        assert!(
            registered.contains("-F _tidewatch") && registered.trim_end().ends_with(" tidewatch"),
            "{registered}"
        );
    }

    #[test]
    fn bash_completes_commands_flags_and_shells_but_not_the_hidden_man() {
        assert_eq!(completions_of(&["ch"]), ["check"]);
        assert_eq!(completions_of(&["co"]), ["completions"]);
        assert!(
            completions_of(&["ma"]).is_empty(),
            "the hidden `man` is offered"
        );
        assert!(completions_of(&["history", "--l"]).contains(&"--limit".to_owned()));
        let shells = completions_of(&["completions", ""]);
        for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
            assert!(
                shells.contains(&shell.to_owned()),
                "{shell} not in {shells:?}"
            );
        }
    }

    #[test]
    fn zsh_and_fish_scripts_are_for_tidewatch() {
        let script = |shell| {
            let mut out = Vec::new();
            write_completions(shell, &mut out);
            String::from_utf8(out).expect("UTF-8")
        };
        assert!(script(Shell::Zsh).starts_with("#compdef tidewatch\n"));
        assert!(script(Shell::Fish).contains("complete -c tidewatch "));
    }

    #[test]
    fn a_man_page_is_written_for_tidewatch_and_each_command_but_not_the_hidden_man() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let out = dir.path().join("man");
        let written = write_man_pages(&out).expect("writing the man pages");

        let names: Vec<String> = written
            .iter()
            .map(|path| {
                assert_eq!(path.parent(), Some(out.as_path()));
                path.file_name()
                    .expect("a file name")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names[0], "tidewatch.1");
        let on_disk: BTreeSet<String> = fs::read_dir(&out)
            .expect("listing the directory")
            .map(|entry| {
                entry
                    .expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(on_disk, names.iter().cloned().collect::<BTreeSet<_>>());
        // Every command users can run, by the definition itself, so a new one gets its page.
        let expected: BTreeSet<String> = std::iter::once("tidewatch.1".to_owned())
            .chain(
                Cli::command()
                    .get_subcommands()
                    .filter(|sub| !sub.is_hide_set())
                    .map(|sub| format!("tidewatch-{}.1", sub.get_name())),
            )
            .collect();
        assert_eq!(on_disk, expected);
        for page in [
            "check",
            "update",
            "run",
            "rollback",
            "history",
            "validate",
            "completions",
        ] {
            assert!(
                on_disk.contains(&format!("tidewatch-{page}.1")),
                "no page for {page}"
            );
        }
        assert!(!on_disk.contains("tidewatch-man.1"));
        assert!(!on_disk.contains("tidewatch-help.1"));

        let top = fs::read_to_string(out.join("tidewatch.1")).expect("reading tidewatch.1");
        let title = format!(
            "\n.TH tidewatch 1 \"\" \"tidewatch {}\" \"tidewatch manual\"\n",
            env!("CARGO_PKG_VERSION")
        );
        assert!(top.contains(&title), "{top}");
        for section in [
            ".SH \"EXIT STATUS\"",
            ".SH FILES",
            ".SH ENVIRONMENT",
            ".SH \"SEE ALSO\"",
        ] {
            assert!(top.contains(section), "no {section} in tidewatch.1");
        }
        assert!(top.contains(r"\fBtidewatch\-check\fR(1)"));
        let check = fs::read_to_string(out.join("tidewatch-check.1")).expect("reading");
        assert!(check.contains("\n.TH tidewatch-check 1 \"\" "), "{check}");
        assert!(check.contains(r"\fB\-\-json\fR"), "{check}");
    }

    #[test]
    fn man_pages_are_the_same_every_time() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let first = write_man_pages(&dir.path().join("a")).expect("writing");
        let second = write_man_pages(&dir.path().join("b")).expect("writing");
        for (a, b) in first.iter().zip(&second) {
            assert_eq!(fs::read(a).expect("reading"), fs::read(b).expect("reading"));
        }
    }
}
