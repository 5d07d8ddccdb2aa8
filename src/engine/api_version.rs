//! Which Engine API version to speak, chosen from the engine's `GET /version` answer.
//!
//! Pure: the engine's newest (`ApiVersion`) and oldest (`MinAPIVersion`) API versions and the
//! newest tidewatch speaks (bollard's) in, the version to speak out, or why there is none.
//! Docker 29 answers `ApiVersion 1.52, MinAPIVersion 1.44`: it refuses every version below 1.44.

pub use crate::plan::recreate::ApiVersion;

/// Why no API version can be agreed on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiVersionError {
    /// `GET /version` gave no `ApiVersion`.
    #[error("the engine did not say which API version it speaks (no ApiVersion in GET /version)")]
    Missing,
    /// A version in `GET /version` is not `MAJOR.MINOR`.
    #[error("the engine's {field} {value:?} is not an API version like \"1.44\"")]
    Unparseable {
        /// `ApiVersion` or `MinAPIVersion`.
        field: &'static str,
        /// What the engine said.
        value: String,
    },
    /// The engine refuses every version tidewatch speaks.
    #[error(
        "the engine speaks API {server_min} at the oldest, and tidewatch at most {client_max}: \
         use a tidewatch built with a newer bollard"
    )]
    ServerTooNew {
        /// The engine's `MinAPIVersion`.
        server_min: ApiVersion,
        /// The newest version tidewatch speaks.
        client_max: ApiVersion,
    },
}

/// The version to speak with an engine that answered `GET /version` with `server_max`
/// (`ApiVersion`) and `server_min` (`MinAPIVersion`; engines before API 1.25 leave it out),
/// when tidewatch speaks at most `client_max`: the newest version both sides speak.
pub fn negotiate(
    server_max: Option<&str>,
    server_min: Option<&str>,
    client_max: ApiVersion,
) -> Result<ApiVersion, ApiVersionError> {
    let parse = |field: &'static str, value: &str| {
        value
            .trim()
            .parse::<ApiVersion>()
            .map_err(|_| ApiVersionError::Unparseable {
                field,
                value: value.to_string(),
            })
    };
    let server_max = parse("ApiVersion", server_max.ok_or(ApiVersionError::Missing)?)?;
    let chosen = server_max.min(client_max);
    if let Some(min) = server_min {
        let server_min = parse("MinAPIVersion", min)?;
        if chosen < server_min {
            return Err(ApiVersionError::ServerTooNew {
                server_min,
                client_max,
            });
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> ApiVersion {
        text.parse().unwrap()
    }

    /// bollard 0.21's newest, as tidewatch is built today.
    fn bollard() -> ApiVersion {
        ApiVersion::from(bollard::API_DEFAULT_VERSION)
    }

    #[test]
    fn debian_12_docker_20_10_gets_its_own_newest() {
        assert_eq!(
            negotiate(Some("1.41"), Some("1.12"), bollard()),
            Ok(v("1.41"))
        );
    }

    #[test]
    fn docker_28_5_gets_the_newer_both_speak() {
        let chosen = negotiate(Some("1.51"), Some("1.24"), bollard()).unwrap();
        assert_eq!(chosen, bollard().min(v("1.51")));
        // Whichever side is newer.
        assert_eq!(
            negotiate(Some("1.51"), Some("1.24"), v("1.47")),
            Ok(v("1.47"))
        );
        assert_eq!(
            negotiate(Some("1.51"), Some("1.24"), v("1.53")),
            Ok(v("1.51"))
        );
    }

    #[test]
    fn docker_29_gets_a_version_it_accepts() {
        let chosen = negotiate(Some("1.52"), Some("1.44"), bollard()).unwrap();
        assert!(chosen >= v("1.44"), "{chosen}");
        assert!(chosen <= v("1.52"), "{chosen}");
        assert_eq!(
            negotiate(Some("1.52"), Some("1.44"), v("1.44")),
            Ok(v("1.44"))
        );
    }

    #[test]
    fn an_engine_whose_minimum_is_above_what_tidewatch_speaks_is_refused_naming_both() {
        let e = negotiate(Some("1.60"), Some("1.50"), v("1.47")).unwrap_err();
        assert_eq!(
            e,
            ApiVersionError::ServerTooNew {
                server_min: v("1.50"),
                client_max: v("1.47")
            }
        );
        let message = e.to_string();
        assert!(message.contains("1.50"), "{message}");
        assert!(message.contains("1.47"), "{message}");
    }

    #[test]
    fn podman_and_old_engines_without_a_minimum_get_their_newest() {
        assert_eq!(negotiate(Some("1.24"), None, bollard()), Ok(v("1.24")));
    }

    #[test]
    fn versions_compare_as_numbers_not_text() {
        assert!(v("1.9") < v("1.10"));
        assert_eq!(
            negotiate(Some("1.100"), Some("1.9"), v("1.53")),
            Ok(v("1.53"))
        );
    }

    #[test]
    fn a_missing_or_garbled_answer_is_an_error() {
        assert_eq!(
            negotiate(None, Some("1.24"), bollard()),
            Err(ApiVersionError::Missing)
        );
        assert!(matches!(
            negotiate(Some("latest"), None, bollard()),
            Err(ApiVersionError::Unparseable {
                field: "ApiVersion",
                ..
            })
        ));
        assert!(matches!(
            negotiate(Some("1.41"), Some("1"), bollard()),
            Err(ApiVersionError::Unparseable {
                field: "MinAPIVersion",
                ..
            })
        ));
        assert!("1.41.2".parse::<ApiVersion>().is_err());
    }
}
