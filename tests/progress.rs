//! What `update` shows while it works: on a terminal (a pseudo-terminal made by util-linux's
//! `script`), a line per pull with bytes done of total and a rate, and a line while the health
//! gate waits; piped, none of that, only the result.

use std::fs;
use std::process::{Command, Stdio};

use crate::support::{push, tidewatch, Registry, TestBed};

/// Large enough that the engine reports the layer's download in many steps.
const PAYLOAD_MIB: usize = 32;

/// Runs `tidewatch ARGS` on a pseudo-terminal and returns everything it wrote there, escape
/// sequences and carriage returns included.
fn on_terminal(bed: &TestBed, args: &[&str]) -> (i32, String) {
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_tidewatch"))
        .chain(args.iter().copied())
        .map(|arg| format!("'{}'", arg.replace('\'', r"'\''")))
        .collect();
    let typescript = bed.dir().join("typescript");
    // -e: script exits with the command's code; -q: no "Script started" banner in the file.
    let status = Command::new("script")
        .args(["-q", "-e", "-c", &quoted.join(" ")])
        .arg(&typescript)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|error| panic!("cannot run script(1) (package bsdutils): {error}"));
    let written = fs::read(&typescript)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", typescript.display()));
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&written).into_owned(),
    )
}

#[test]
fn update_shows_each_pull_and_the_health_wait_on_a_terminal_and_nothing_of_it_when_piped() {
    let bed = TestBed::new("progress");
    let registry = Registry::start();
    let image = registry.image("big", "v1");
    bed.build_app(&image, "1");
    push(&image);
    bed.run("web", &image, &[]);
    let updater = bed.updater(&[registry.host()]);
    let config = updater.config().to_string_lossy().into_owned();

    let made = bed.import_app_with_payload(&image, "2", PAYLOAD_MIB);
    let v2 = push(&image);
    // Made here, the image's layer is on the engine already: without this the pull only says
    // "Already exists".
    bed.drop_image(&made);
    let (code, screen) = on_terminal(&bed, &["-c", &config, "update"]);
    assert_eq!(code, 0, "update on a terminal failed:\n{screen}");
    // Shown as `docker image ls` shortens ids: 12 hex digits.
    let short = v2
        .get(..7 + 12)
        .unwrap_or_else(|| panic!("not a digest: {v2}"));
    let pulled = format!("pulling {}@{short}: ", registry.repo("big"));
    let lines: Vec<&str> = screen
        .split(['\r', '\n'])
        .filter(|line| line.contains(&pulled))
        .collect();
    eprintln!("the pull's lines on the terminal: {lines:#?}");
    assert!(
        lines
            .iter()
            .any(|line| line.contains(" / ") && line.contains("MiB") && line.contains("/s")),
        "no line with bytes done of total and a rate for {pulled:?}:\n{screen}"
    );
    assert!(
        lines.iter().any(|line| line.contains(": done, ")),
        "the pull's line does not end with what was pulled:\n{screen}"
    );
    assert!(
        screen.contains(&format!("waiting for {} to be healthy: ", bed.name("web"))),
        "no line while the health gate waited:\n{screen}"
    );
    assert!(bed.serves("web").contains("version 2"), "{screen}");

    let made = bed.import_app_with_payload(&image, "3", PAYLOAD_MIB);
    push(&image);
    bed.drop_image(&made);
    let piped = tidewatch(["-c", &config, "update"]);
    assert_eq!(piped.code, 0, "{piped:#?}");
    for drawn in ["pulling ", "waiting for ", "\u{1b}["] {
        assert!(
            !piped.stderr.contains(drawn) && !piped.stdout.contains(drawn),
            "piped output has {drawn:?} from a progress line: {piped:#?}"
        );
    }
    assert!(
        piped.stdout.contains(&bed.name("web")),
        "the result table still names the container: {piped:#?}"
    );
    assert!(bed.serves("web").contains("version 3"), "{piped:#?}");
}
