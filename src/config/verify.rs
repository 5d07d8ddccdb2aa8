//! `[[verify]]`: which images must be signed, by what (a cosign key, or a keyless identity
//! under a Sigstore trusted root), and whether an unverified digest is refused or only
//! reported. Key and root files are read and checked at start-up.

use std::path::Path;

use toml::Spanned;

use super::{raw, ConfigError, Locator};
use crate::cosign::{Identity, Keyless, PublicKey, Trust, TrustedRoot};
use crate::image_ref::ImageRef;

/// The largest key file read.
const MAX_KEY_BYTES: u64 = 64 * 1024;
/// The largest trusted root read (Sigstore's public one is about 10 KiB).
const MAX_ROOT_BYTES: u64 = 4 * 1024 * 1024;

/// What happens to a digest that no trusted signature names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// Never pulled: the row is an error and the old container stays.
    Enforce,
    /// Updated all the same, and said loudly.
    Warn,
}

/// One `[[verify]]` table.
#[derive(Debug, Clone)]
pub struct VerifyRule {
    /// Its place among the tables, from 1, for messages.
    pub number: usize,
    /// Repository patterns (`ghcr.io/acme/*`): `*` stands for any run of characters.
    pub images: Vec<String>,
    /// What a signature must come from.
    pub trust: Trust,
    /// Enforce or warn.
    pub mode: VerifyMode,
    /// Where the signatures are (`registry.lan:5000/sigs/app`), when not beside the image:
    /// cosign's `COSIGN_REPOSITORY`. Always on the images' registry.
    pub signature_repository: Option<ImageRef>,
}

impl VerifyRule {
    /// Whether the repository `name` (`registry/repository`, as normalised) is one of its
    /// images.
    pub fn matches(&self, name: &str) -> bool {
        self.images.iter().any(|p| glob(p, name))
    }

    /// How messages name it: `verify rule 2 (ghcr.io/acme/*)`.
    pub fn describe(&self) -> String {
        format!("verify rule {} ({})", self.number, self.images.join(", "))
    }
}

/// The rule for repository `name`: the first that matches.
pub fn rule_for<'a>(rules: &'a [VerifyRule], name: &str) -> Option<&'a VerifyRule> {
    rules.iter().find(|r| r.matches(name))
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (`/` too).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and how much of the text it has taken.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

pub(super) fn validate(
    raw: Vec<raw::RawVerify>,
    at: &Locator<'_>,
) -> Result<Vec<VerifyRule>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| rule(i + 1, r, at))
        .collect()
}

fn rule(number: usize, r: raw::RawVerify, at: &Locator<'_>) -> Result<VerifyRule, ConfigError> {
    if r.images.get_ref().is_empty() {
        return Err(at.error(
            r.images.span(),
            "images needs at least one pattern, like \"ghcr.io/acme/*\"",
        ));
    }
    let mut images = Vec::new();
    for p in r.images.get_ref() {
        images.push(pattern(p, at)?);
    }
    let mode = match r.mode.as_ref().map(|m| m.get_ref().as_str()) {
        None | Some("enforce") => VerifyMode::Enforce,
        Some("warn") => VerifyMode::Warn,
        Some(other) => {
            return Err(at.error(
                r.mode.as_ref().map_or(0..0, Spanned::span),
                format!("unknown mode {other:?}: expected \"enforce\" or \"warn\""),
            ))
        }
    };
    let keyless = r.identity.is_some() || r.identity_regex.is_some();
    let trust = match (&r.key, keyless) {
        (Some(key), true) => {
            return Err(at.error(
                key.span(),
                "key and identity are exclusive: a rule checks a key or a keyless identity",
            ))
        }
        (Some(key), false) => {
            for (set, name) in [
                (r.issuer.as_ref().map(Spanned::span), "issuer"),
                (r.trusted_root.as_ref().map(Spanned::span), "trusted_root"),
                (r.tlog.as_ref().map(Spanned::span), "tlog"),
            ] {
                if let Some(span) = set {
                    return Err(
                        at.error(span, format!("{name} is for keyless rules, not with key"))
                    );
                }
            }
            let pem = read(key.get_ref(), MAX_KEY_BYTES)
                .map_err(|e| at.error(key.span(), format!("key {e}")))?;
            let key_value = PublicKey::from_pem(&pem).map_err(|e| {
                at.error(key.span(), format!("key {}: {e}", key.get_ref().display()))
            })?;
            Trust::Key(key_value)
        }
        (None, true) => Trust::Keyless(Box::new(keyless_trust(&r, at)?)),
        (None, false) => {
            return Err(at.error(
                r.images.span(),
                "a [[verify]] rule needs key = \"/path/cosign.pub\", or identity (or \
                 identity_regex), issuer and trusted_root for keyless signatures",
            ))
        }
    };
    let signature_repository = r
        .signature_repository
        .as_ref()
        .map(|repo| signature_repository(repo, &images, at))
        .transpose()?;
    Ok(VerifyRule {
        number,
        images,
        trust,
        mode,
        signature_repository,
    })
}

/// A `signature_repository`: one repository (no pattern, tag or digest) on the registry of
/// every image pattern, since it is read with that registry's credentials.
fn signature_repository(
    repo: &Spanned<String>,
    images: &[String],
    at: &Locator<'_>,
) -> Result<ImageRef, ConfigError> {
    let text = pattern(repo, at)?;
    if text.contains('*') || !text.contains('/') {
        return Err(at.error(
            repo.span(),
            format!(
                "signature_repository {text:?} must name one repository, like \"registry.lan:5000/sigs/app\""
            ),
        ));
    }
    let host = |t: &str| t.split('/').next().unwrap_or_default().to_string();
    if let Some(other) = images.iter().find(|p| host(p) != host(&text)) {
        return Err(at.error(
            repo.span(),
            format!(
                "signature_repository {text:?} is on another registry than image pattern {other:?}: \
                 signatures are read from the images' registry, with its credentials"
            ),
        ));
    }
    ImageRef::parse(&text).map_err(|e| at.error(repo.span(), format!("signature_repository: {e}")))
}

fn keyless_trust(r: &raw::RawVerify, at: &Locator<'_>) -> Result<Keyless, ConfigError> {
    let identity = match (&r.identity, &r.identity_regex) {
        (Some(_), Some(re)) => {
            return Err(at.error(
                re.span(),
                "identity and identity_regex are exclusive: keep one of them",
            ))
        }
        (Some(exact), None) => Identity::Exact(exact.get_ref().clone()),
        (None, Some(re)) => Identity::whole_match(re.get_ref())
            .map_err(|e| at.error(re.span(), format!("identity_regex: {e}")))?,
        (None, None) => unreachable!("only called for keyless rules"),
    };
    let span = r
        .identity
        .as_ref()
        .or(r.identity_regex.as_ref())
        .map_or(0..0, Spanned::span);
    let issuer = r.issuer.as_ref().ok_or_else(|| {
        at.error(
            span.clone(),
            "a keyless rule needs issuer, e.g. \"https://token.actions.githubusercontent.com\"",
        )
    })?;
    let root_path = r.trusted_root.as_ref().ok_or_else(|| {
        at.error(
            span,
            "a keyless rule needs trusted_root = \"/path/trusted_root.json\" (Sigstore's, or your own CA's)",
        )
    })?;
    let root_error = |e: String| {
        at.error(
            root_path.span(),
            format!("trusted_root {}: {e}", root_path.get_ref().display()),
        )
    };
    let json = read(root_path.get_ref(), MAX_ROOT_BYTES)
        .map_err(|e| at.error(root_path.span(), format!("trusted_root {e}")))?;
    let root = TrustedRoot::parse(&json).map_err(|e| root_error(e.to_string()))?;
    let tlog = r.tlog.as_ref().is_none_or(|t| *t.get_ref());
    if tlog && root.log_count() == 0 {
        return Err(root_error(
            "names no transparency log (tlogs) to check signatures' log entries with; \
             add one, or set tlog = false"
                .into(),
        ));
    }
    Ok(Keyless {
        root,
        identity,
        issuer: issuer.get_ref().clone(),
        tlog,
    })
}

/// A repository pattern: a registry host first, no tag or digest.
fn pattern(p: &Spanned<String>, at: &Locator<'_>) -> Result<String, ConfigError> {
    let text = p.get_ref().trim();
    let host = text.split('/').next().unwrap_or_default();
    let last = text.rsplit('/').next().unwrap_or_default();
    let has_host = host.contains('.') || host.contains(':') || host == "localhost";
    let wrong = if text.is_empty() {
        Some("an image pattern must not be empty".to_string())
    } else if text.contains('@') || (text.contains('/') && last.contains(':')) {
        Some(format!(
            "image pattern {text:?} names a tag or digest: patterns match repositories, like \"ghcr.io/acme/app\""
        ))
    } else if !has_host && text != "*" {
        Some(format!(
            "image pattern {text:?} needs its registry host first, like \"docker.io/library/nginx\" or \"ghcr.io/acme/*\""
        ))
    } else {
        None
    };
    match wrong {
        Some(message) => Err(at.error(p.span(), message)),
        None => Ok(text.to_string()),
    }
}

/// Reads a file of at most `max` bytes; the error names it.
fn read(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{shown}: {e}"))?
        .len();
    if size > max {
        return Err(format!("{shown}: larger than {max} bytes"));
    }
    std::fs::read(path).map_err(|e| format!("{shown}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn a_star_stands_for_any_run_of_characters() {
        assert!(glob("ghcr.io/acme/*", "ghcr.io/acme/app"));
        assert!(glob("ghcr.io/acme/*", "ghcr.io/acme/team/app"));
        assert!(!glob("ghcr.io/acme/*", "ghcr.io/acmex/app"));
        assert!(glob("registry.lan:5000/app", "registry.lan:5000/app"));
        assert!(!glob("registry.lan:5000/app", "registry.lan:5000/app2"));
        assert!(glob("*", "docker.io/library/nginx"));
        assert!(glob("*/acme/*-api", "ghcr.io/acme/billing-api"));
        assert!(!glob("*/acme/*-api", "ghcr.io/acme/billing-web"));
    }
}
