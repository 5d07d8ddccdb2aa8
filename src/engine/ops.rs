//! Engine mutations used by `apply`: pull by digest, tag, stop, rename, create, start, remove.
//! Each is one Engine API call with an error that names the container or image.

use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, ImageInspect,
    NetworkConnectRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, KillContainerOptionsBuilder, ListImagesOptions,
    RemoveContainerOptions, RemoveImageOptions, RenameContainerOptions, RestartContainerOptions,
    StartContainerOptions, StopContainerOptions, TagImageOptions,
};
use futures_util::TryStreamExt;

use super::{Engine, EngineError, Flavor};
use crate::credentials::Credentials;
use crate::image_ref::ImageRef;

impl Engine {
    /// Pulls `reference` at `digest` (`repo@sha256:...`), so what runs is exactly what was
    /// checked, trying each of `sources` in turn (mirrors first, then the origin, each with its
    /// credentials); then points the reference's tag at it so `docker ps` and compose see the
    /// tag. Returns the pulled image's id.
    pub async fn pull_by_digest(
        &self,
        reference: &ImageRef,
        digest: &str,
        sources: &[(ImageRef, Option<Credentials>)],
    ) -> Result<String, EngineError> {
        self.pull_digest(reference, digest, sources, true).await
    }

    /// Pulls `digest` of `reference`'s repository like [`Engine::pull_by_digest`], leaving the
    /// tag where it is: to bring back the record of an image a container still runs.
    pub async fn restore_by_digest(
        &self,
        reference: &ImageRef,
        digest: &str,
        sources: &[(ImageRef, Option<Credentials>)],
    ) -> Result<String, EngineError> {
        self.pull_digest(reference, digest, sources, false).await
    }

    async fn pull_digest(
        &self,
        reference: &ImageRef,
        digest: &str,
        sources: &[(ImageRef, Option<Credentials>)],
        tag: bool,
    ) -> Result<String, EngineError> {
        let origin = [(reference.clone(), None)];
        let sources = if sources.is_empty() {
            &origin[..]
        } else {
            sources
        };
        let mut last_error = None;
        for (source, credentials) in sources {
            let by_digest = source.with_digest(digest).to_string();
            let auth = credentials.as_ref().map(|c| DockerCredentials {
                username: Some(c.username.clone()),
                password: Some(c.password.clone()),
                serveraddress: Some(source.registry().to_string()),
                ..Default::default()
            });
            let mut display = self.progress().pull(&by_digest);
            let pulled = self
                .docker()
                .create_image(
                    Some(CreateImageOptions {
                        from_image: Some(by_digest.clone()),
                        ..Default::default()
                    }),
                    None,
                    auth,
                )
                .try_for_each(|info| {
                    display.observe(&info);
                    async { Ok(()) }
                })
                .await;
            display.finish(pulled.is_ok());
            match pulled {
                Ok(()) => {
                    let image = self.inspect_image(&by_digest).await?;
                    let id = image.id.unwrap_or_default();
                    if tag {
                        self.tag(&id, reference).await?;
                    }
                    return Ok(id);
                }
                Err(e) => {
                    tracing::warn!(image = %by_digest, "pull failed: {e}");
                    last_error = Some(EngineError::request(format!("pulling {by_digest}"))(e));
                }
            }
        }
        Err(last_error.unwrap_or_else(|| EngineError::NoPullSource {
            reference: reference.to_string(),
        }))
    }

    /// Points `reference`'s tag (`latest` when it has none) at image `image_id`.
    pub async fn tag(&self, image_id: &str, reference: &ImageRef) -> Result<(), EngineError> {
        let tag = reference.tag().unwrap_or("latest");
        self.docker()
            .tag_image(
                image_id,
                Some(TagImageOptions {
                    repo: Some(reference.name()),
                    tag: Some(tag.to_string()),
                }),
            )
            .await
            .map_err(EngineError::request(format!(
                "tagging {image_id} as {}:{tag}",
                reference.name()
            )))
    }

    /// Inspects an image by id or reference.
    pub async fn inspect_image(&self, image: &str) -> Result<ImageInspect, EngineError> {
        self.docker()
            .inspect_image(image)
            .await
            .map_err(EngineError::request(format!("inspecting image {image}")))
    }

    /// Inspects an image for the defaults its containers inherited (env, labels, HEALTHCHECK...).
    /// Under Podman the HEALTHCHECK comes from its own API, since its Docker-compatible image
    /// inspect leaves it out; when that fails, the image counts as having none (logged), so an
    /// inherited healthcheck is carried over as the user's.
    pub async fn inspect_image_defaults(&self, image: &str) -> Result<ImageInspect, EngineError> {
        let mut inspect = self.inspect_image(image).await?;
        if self.flavor() == Flavor::Podman {
            let config = inspect.config.get_or_insert_with(Default::default);
            if config.healthcheck.is_none() {
                match self.podman_image_healthcheck(image).await {
                    Ok(healthcheck) => config.healthcheck = healthcheck,
                    Err(e) => tracing::warn!(%image, "reading the HEALTHCHECK from Podman: {e}"),
                }
            }
        }
        Ok(inspect)
    }

    /// Inspects a container by id or name; `None` when it does not exist.
    pub async fn inspect_container(
        &self,
        container: &str,
    ) -> Result<Option<ContainerInspectResponse>, EngineError> {
        match self.inspect_container_settled(container).await {
            Ok(c) => Ok(Some(c)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(EngineError::request(format!(
                "inspecting container {container}"
            ))(e)),
        }
    }

    /// `GET /containers/{id}/json`, waiting out Podman's transient `stopped` state.
    ///
    /// Podman 4.3 reports `"Status": "stopped"` for a container whose process has exited and
    /// whose cleanup (run by conmon right after) has not finished; the Engine API has no such
    /// state, so the answer does not parse. It turns into `exited` within moments.
    pub(crate) async fn inspect_container_settled(
        &self,
        container: &str,
    ) -> Result<ContainerInspectResponse, bollard::errors::Error> {
        const TRIES: u32 = 40;
        const PAUSE: std::time::Duration = std::time::Duration::from_millis(50);
        let mut tries = 0;
        loop {
            match self.docker().inspect_container(container, None).await {
                Err(bollard::errors::Error::JsonDataError { message, .. })
                    if self.flavor() == Flavor::Podman
                        && message.contains("`stopped`")
                        && tries < TRIES =>
                {
                    tries += 1;
                    tokio::time::sleep(PAUSE).await;
                }
                answer => return answer,
            }
        }
    }

    /// Stops a container with its own stop signal and timeout (the engine applies the
    /// container's `StopSignal` and `StopTimeout` when the request names neither).
    pub async fn stop(&self, container: &str) -> Result<(), EngineError> {
        match self
            .docker()
            .stop_container(container, None::<StopContainerOptions>)
            .await
        {
            // 304: already stopped.
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(EngineError::request(format!(
                "stopping container {container}"
            ))(e)),
        }
    }

    /// Stops a container that asks, by label, for another signal than its image's: `signal`
    /// goes first, and the container has its own stop timeout (`grace`) to exit on it; then the
    /// plain [`Engine::stop`] follows, which is a no-op when it did and otherwise ends it the
    /// usual way. (The engine's stop takes a signal only from API 1.42, and Debian 12's speaks
    /// 1.41, so the signal is sent as a kill.)
    pub async fn stop_with_signal(
        &self,
        container: &str,
        signal: &str,
        grace: Duration,
    ) -> Result<(), EngineError> {
        let kill = KillContainerOptionsBuilder::new().signal(signal).build();
        match self.docker().kill_container(container, Some(kill)).await {
            Ok(()) => self.wait_stopped(container, grace).await?,
            // 409: not running, so there is nothing to signal.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => {}
            Err(e) => {
                return Err(EngineError::request(format!(
                    "sending {signal} to container {container}"
                ))(e))
            }
        }
        self.stop(container).await
    }

    /// Waits up to `grace` for a container to stop running; returns early once it has.
    async fn wait_stopped(&self, container: &str, grace: Duration) -> Result<(), EngineError> {
        let deadline = crate::clock::after_tokio(tokio::time::Instant::now(), grace);
        loop {
            let running = self
                .inspect_container(container)
                .await?
                .and_then(|c| c.state)
                .and_then(|state| state.running)
                .unwrap_or(false);
            if !running || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Renames a container.
    pub async fn rename(&self, container: &str, new_name: &str) -> Result<(), EngineError> {
        self.docker()
            .rename_container(
                container,
                RenameContainerOptions {
                    name: new_name.to_string(),
                },
            )
            .await
            .map_err(EngineError::request(format!(
                "renaming container {container} to {new_name}"
            )))
    }

    /// Creates a container named `name`; returns its id.
    pub async fn create(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, EngineError> {
        let created = self
            .docker()
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.to_string()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(EngineError::request(format!("creating container {name}")))?;
        for warning in created.warnings {
            tracing::warn!(container = name, "engine: {warning}");
        }
        Ok(created.id)
    }

    /// Connects a container to a network with its endpoint settings (aliases, static IPs).
    pub async fn connect_network(
        &self,
        container: &str,
        network: &str,
        endpoint: EndpointSettings,
    ) -> Result<(), EngineError> {
        self.docker()
            .connect_network(
                network,
                NetworkConnectRequest {
                    container: container.to_string(),
                    endpoint_config: Some(endpoint),
                },
            )
            .await
            .map_err(EngineError::request(format!(
                "connecting container {container} to network {network}"
            )))
    }

    /// Starts a container (a running one is left as it is).
    pub async fn start(&self, container: &str) -> Result<(), EngineError> {
        match self
            .docker()
            .start_container(container, None::<StartContainerOptions>)
            .await
        {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(EngineError::request(format!(
                "starting container {container}"
            ))(e)),
        }
    }

    /// Restarts a container.
    pub async fn restart(&self, container: &str) -> Result<(), EngineError> {
        self.docker()
            .restart_container(container, None::<RestartContainerOptions>)
            .await
            .map_err(EngineError::request(format!(
                "restarting container {container}"
            )))
    }

    /// Removes a container (force: it may be running). Its named and anonymous volumes are
    /// kept: anonymous ones may be in use by the replacement.
    pub async fn remove(&self, container: &str) -> Result<(), EngineError> {
        match self
            .docker()
            .remove_container(
                container,
                Some(RemoveContainerOptions {
                    force: true,
                    v: false,
                    link: false,
                }),
            )
            .await
        {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(EngineError::request(format!(
                "removing container {container}"
            ))(e)),
        }
    }
}

impl Engine {
    /// Removes previous images of `reference`'s repository beyond the newest `keep`, never
    /// `current` and never one a container (running or not) uses or another tag still names:
    /// the engine refuses those without force, and tidewatch never forces. Returns how many
    /// were removed.
    pub async fn prune_previous_images(
        &self,
        reference: &ImageRef,
        current: &str,
        keep: usize,
    ) -> Result<usize, EngineError> {
        let repo = reference.name();
        let mut images: Vec<_> = self
            .docker()
            .list_images(Some(ListImagesOptions::default()))
            .await
            .map_err(EngineError::request("listing images"))?
            .into_iter()
            .filter(|i| i.id != current)
            .filter(|i| {
                i.repo_digests
                    .iter()
                    .chain(&i.repo_tags)
                    .filter_map(|r| {
                        let name = r.split('@').next().unwrap_or(r);
                        ImageRef::parse(name).ok()
                    })
                    .any(|r| r.name() == repo)
            })
            .collect();
        images.sort_by_key(|i| std::cmp::Reverse(i.created));
        let mut removed = 0;
        for image in images.iter().skip(keep) {
            match self
                .docker()
                .remove_image(&image.id, None::<RemoveImageOptions>, None)
                .await
            {
                Ok(_) => removed += 1,
                Err(e) => tracing::debug!(image = %image.id, "kept: {e}"),
            }
        }
        Ok(removed)
    }
}
