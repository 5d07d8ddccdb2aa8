//! Errors as one line with their causes: reqwest's (and rustls's) own message is only the
//! outermost one, and "error sending request" alone does not say what went wrong.

use std::error::Error;

/// `error: cause: cause ...`.
pub fn error_chain(e: &dyn Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
