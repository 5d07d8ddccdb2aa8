//! Rendering results for people (aligned tables) and for scripts (JSON).

use std::fmt::Write as _;

use crate::image_ref::short_digest;
use crate::plan::detect::CheckRow;

/// A plain aligned table: a header row, then one line per row. Columns are padded to their
/// widest cell; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 == widths.len() {
                s.push_str(cell);
            } else {
                let _ = write!(s, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// `check` as a table.
pub fn check_table(rows: &[CheckRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.container.clone(),
                r.image.clone(),
                r.status.as_str().to_string(),
                r.current_digest
                    .as_deref()
                    .map_or("-".into(), |d| short_digest(d).to_string()),
                r.available_digest
                    .as_deref()
                    .map_or("-".into(), |d| short_digest(d).to_string()),
                r.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "CONTAINER",
            "IMAGE",
            "STATUS",
            "CURRENT",
            "AVAILABLE",
            "DETAIL",
        ],
        &cells,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::detect::Status;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["A", "BB"],
            &[
                vec!["long-name".into(), "x".into()],
                vec!["s".into(), "y".into()],
            ],
        );
        assert_eq!(t, "A          BB\nlong-name  x\ns          y\n");
    }

    #[test]
    fn check_table_shows_short_digests_and_dashes() {
        let t = check_table(&[CheckRow {
            container: "web".into(),
            image: "app:1".into(),
            current_digest: Some("sha256:0123456789abcdef".into()),
            available_digest: None,
            status: Status::Error,
            detail: Some("registry down".into()),
        }]);
        assert!(t.contains("sha256:0123456789ab  -"), "{t}");
        assert!(t.contains("error"), "{t}");
    }
}
