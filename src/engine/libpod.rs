//! What only Podman's own (libpod) API tells, asked on the same address as its Docker-compatible
//! one. bollard speaks the Docker API only, so these few requests go over hyper directly.

use bollard::models::HealthConfig;
use serde::Deserialize;

use super::Engine;

/// The libpod API version asked for: Podman 4.0 and later answer it.
const LIBPOD_API: &str = "v4.0.0";

impl Engine {
    /// The HEALTHCHECK that image `id` defines, from libpod's image inspect. Podman's
    /// Docker-compatible image inspect leaves it out (4.3 at least), and without it an inherited
    /// healthcheck looks like one the user set.
    pub async fn podman_image_healthcheck(&self, id: &str) -> Result<Option<HealthConfig>, String> {
        #[derive(Deserialize)]
        struct LibpodImage {
            #[serde(rename = "Healthcheck")]
            healthcheck: Option<HealthConfig>,
        }
        let body = self
            .raw_get(&format!("/{LIBPOD_API}/libpod/images/{id}/json"))
            .await?;
        serde_json::from_slice::<LibpodImage>(&body)
            .map(|image| image.healthcheck)
            .map_err(|e| format!("libpod image inspect of {id}: {e}"))
    }
}
