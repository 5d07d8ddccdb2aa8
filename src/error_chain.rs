//! Errors as one line with their causes: reqwest's (and rustls's) own message is only the
//! outermost one, and "error sending request" alone does not say what went wrong.

use std::error::Error;

/// `error: cause: cause ...`. A cause whose text is already in the line is left out: many
/// errors (bollard's, hyper's, ours that say `{source}`) print their source themselves, and
/// the same words three times over hide the one that matters.
pub fn error_chain(e: &dyn Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("refused")]
    struct Root;

    #[derive(Debug, thiserror::Error)]
    #[error("client error: {0}")]
    struct Repeats(#[source] Root);

    #[derive(Debug, thiserror::Error)]
    #[error("engine unreachable")]
    struct Outer(#[source] Repeats);

    #[test]
    fn each_cause_is_said_once_and_silent_ones_are_added() {
        assert_eq!(
            error_chain(&Outer(Repeats(Root))),
            "engine unreachable: client error: refused"
        );
        assert_eq!(error_chain(&Repeats(Root)), "client error: refused");
    }
}
