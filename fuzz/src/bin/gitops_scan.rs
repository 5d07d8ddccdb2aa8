//! A repository's YAML file: scanned without a panic, and pinning everything found either
//! refused or written so that the file reads back as the same rows with the pinned references.
//! The first byte chooses the file's name (a kustomization.yaml is known by its name).

use tidewatch::gitops::yaml::{pin, pinned, scan};

const DIGEST: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&selector, rest)) = data.split_first() else {
            return;
        };
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        let path = if selector & 1 == 0 {
            "stacks/app/compose.yaml"
        } else {
            "k8s/kustomization.yaml"
        };
        let Ok(rows) = scan(path, text) else {
            return;
        };
        // Each row: its name, and the reference it will have once pinned (None for an error).
        let expected: Vec<(String, Option<String>)> = rows
            .iter()
            .map(|row| match row {
                Ok(image) => (
                    image.row.clone(),
                    Some(pinned(&image.reference, DIGEST, None)),
                ),
                Err(e) => (e.row.clone(), None),
            })
            .collect();
        let edits: Vec<_> = rows
            .into_iter()
            .flatten()
            .map(|image| {
                let new = pinned(&image.reference, DIGEST, None);
                (image.site, new)
            })
            .collect();
        let Ok(out) = pin(text, &edits) else {
            return;
        };
        let again: Vec<(String, Option<String>)> = scan(path, &out)
            .expect("a pinned file is still YAML")
            .into_iter()
            .map(|row| match row {
                Ok(image) => (image.row, Some(image.reference)),
                Err(e) => (e.row, None),
            })
            .collect();
        assert_eq!(again, expected, "{out}");
    });
}
