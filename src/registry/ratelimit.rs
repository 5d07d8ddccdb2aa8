//! Registry rate limits: Docker Hub's `RateLimit-Limit`/`RateLimit-Remaining` headers
//! (`100;w=21600`) and `Retry-After` on 429/503.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// The last rate limit a registry reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub limit: Option<u64>,
    /// Requests left in the window.
    pub remaining: u64,
    /// The window, when given.
    pub window: Option<Duration>,
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rate limit: {} left", self.remaining)?;
        if let Some(limit) = self.limit {
            write!(f, " of {limit}")?;
        }
        if let Some(w) = self.window {
            write!(f, " per {}", humantime::format_duration(w))?;
        }
        Ok(())
    }
}

/// `N` or `N;w=SECONDS`.
fn parse_value(v: &str) -> Option<(u64, Option<Duration>)> {
    let mut parts = v.split(';');
    let n = parts.next()?.trim().parse().ok()?;
    let window = parts
        .filter_map(|p| p.trim().strip_prefix("w="))
        .find_map(|w| w.trim().parse().ok())
        .map(Duration::from_secs);
    Some((n, window))
}

/// The rate limit in `headers`, if the registry sent one.
pub fn from_headers(headers: &HeaderMap) -> Option<RateLimit> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (remaining, window) = parse_value(get("ratelimit-remaining")?)?;
    let limit = get("ratelimit-limit").and_then(parse_value);
    Some(RateLimit {
        limit: limit.map(|(n, _)| n),
        remaining,
        window: window.or(limit.and_then(|(_, w)| w)),
    })
}

/// `Retry-After` in seconds (the HTTP-date form is rare on registries and read as absent).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn docker_hub_rate_limit_headers_are_read() {
        let rl = from_headers(&headers(&[
            ("ratelimit-limit", "100;w=21600"),
            ("ratelimit-remaining", "76;w=21600"),
        ]))
        .unwrap();
        assert_eq!(rl.limit, Some(100));
        assert_eq!(rl.remaining, 76);
        assert_eq!(rl.window, Some(Duration::from_secs(21600)));
        assert_eq!(rl.to_string(), "rate limit: 76 left of 100 per 6h");
    }

    #[test]
    fn absent_or_garbled_rate_limit_is_none() {
        assert_eq!(from_headers(&headers(&[])), None);
        assert_eq!(
            from_headers(&headers(&[("ratelimit-remaining", "lots")])),
            None
        );
    }

    #[test]
    fn retry_after_seconds_are_read() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")])),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&headers(&[(
                "retry-after",
                "Wed, 21 Oct 2015 07:28:00 GMT"
            )])),
            None
        );
    }
}
