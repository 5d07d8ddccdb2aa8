//! Test images: a busybox httpd app built `FROM scratch` (nothing is pulled from the internet),
//! pushed with docker, and re-published with oci-client in the shapes docker does not push
//! itself: multi-arch indexes and OCI media types.

use std::fs;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use oci_client::client::{ClientConfig, ClientProtocol, Config};
use oci_client::manifest::{
    IMAGE_CONFIG_MEDIA_TYPE, IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::{json, Value};

use super::bed::{TestBed, IMAGE_LABEL};
use super::docker::{build, docker, image_id};
use super::registry::Registry;

/// The static busybox that `scripts/test-env` installs (package busybox-static). Static, because
/// a `FROM scratch` image has no libc for a dynamic one.
const BUSYBOX: &str = "/bin/busybox";

/// The port the app's httpd listens on inside its container.
pub const APP_PORT: u16 = 8080;

impl TestBed {
    /// Builds the test app as `image` and returns its image id. The app is busybox `httpd`
    /// serving a page that says `version`, with a busybox-wget `HEALTHCHECK`; the version is
    /// also in the image's env (`APP_VERSION`) and label (`tidewatch.test.version`). Images are
    /// labelled with the bed id, so two beds never share one and drop removes them.
    pub fn build_app(&self, image: &str, version: &str) -> String {
        let httpd = serde_json::json!([
            "/bin/busybox",
            "httpd",
            "-f",
            "-p",
            APP_PORT.to_string(),
            "-h",
            "/www"
        ]);
        self.build_app_with_entrypoint(image, version, &httpd.to_string())
    }

    /// Like [`TestBed::build_app`], with `entrypoint` (a Dockerfile JSON array) instead of
    /// running httpd directly, e.g. a shell that decides how the app handles SIGTERM.
    pub fn build_app_with_entrypoint(
        &self,
        image: &str,
        version: &str,
        entrypoint: &str,
    ) -> String {
        self.build_labelled(image, version, entrypoint, &[])
    }

    fn build_labelled(
        &self,
        image: &str,
        version: &str,
        entrypoint: &str,
        labels: &[(&str, &str)],
    ) -> String {
        assert!(
            version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "version {version:?} must be [A-Za-z0-9._-] to sit unquoted in a Dockerfile"
        );
        static BUILDS: AtomicU32 = AtomicU32::new(0);
        let context = self
            .dir()
            .join(format!("build-{}", BUILDS.fetch_add(1, Ordering::Relaxed)));
        write_app_context(&context, version, entrypoint);
        let mut args = vec![
            "--label".to_string(),
            format!("{IMAGE_LABEL}={}", self.id()),
        ];
        for (key, value) in labels {
            args.push("--label".to_string());
            args.push(format!("{key}={value}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        build(&args, image, &context)
    }

    /// Like [`TestBed::build_app`], with image labels `labels` too (`docker build --label`),
    /// as docker/metadata-action sets the OCI ones.
    pub fn build_app_with_labels(
        &self,
        image: &str,
        version: &str,
        labels: &[(&str, &str)],
    ) -> String {
        let httpd = serde_json::json!([
            "/bin/busybox",
            "httpd",
            "-f",
            "-p",
            APP_PORT.to_string(),
            "-h",
            "/www"
        ]);
        self.build_labelled(image, version, &httpd.to_string(), labels)
    }

    /// The test app (httpd serving `version`'s page, no HEALTHCHECK) as one layer that also
    /// holds `megabytes` MiB of incompressible bytes, made with `docker import`: an image whose
    /// pull takes long enough to be watched. Unlike a build, an import leaves nothing behind in
    /// a build cache, so once the image is removed (see [`TestBed::drop_image`]) the engine
    /// must download every byte again, on the containerd store too.
    pub fn import_app_with_payload(&self, image: &str, version: &str, megabytes: usize) -> String {
        static IMPORTS: AtomicU32 = AtomicU32::new(0);
        let n = IMPORTS.fetch_add(1, Ordering::Relaxed);
        let root = self.dir().join(format!("import-{n}"));
        let www = root.join("www");
        let bin = root.join("bin");
        for dir in [&www, &bin] {
            fs::create_dir_all(dir)
                .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
        }
        fs::copy(BUSYBOX, bin.join("busybox")).unwrap_or_else(|error| {
            panic!(
                "cannot copy {BUSYBOX} into {}: {error} (run scripts/test-env)",
                bin.display()
            )
        });
        // xorshift64: gzip cannot shrink it, so the layer on the wire is as large as on disk.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ u64::from(n);
        let mut payload = Vec::with_capacity(megabytes << 20);
        while payload.len() < megabytes << 20 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            payload.extend_from_slice(&state.to_le_bytes());
        }
        for (path, contents) in [
            (root.join("payload"), payload),
            (
                www.join("index.html"),
                format!("{}\n", page(version)).into_bytes(),
            ),
        ] {
            fs::write(&path, contents)
                .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        }
        let layer = self.dir().join(format!("import-{n}.tar"));
        let tar = std::process::Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&layer)
            .arg(".")
            .status()
            .unwrap_or_else(|error| panic!("cannot run tar: {error}"));
        assert!(tar.success(), "tar of {} failed: {tar}", root.display());
        docker(&[
            "import",
            "--change",
            &format!(
                r#"ENTRYPOINT ["/bin/busybox", "httpd", "-f", "-p", "{APP_PORT}", "-h", "/www"]"#
            ),
            "--change",
            &format!("LABEL {IMAGE_LABEL}={}", self.id()),
            &layer.to_string_lossy(),
            image,
        ]);
        image_id(image)
    }

    /// Removes image `id` from the engine (its tags with it), so that the next pull of it
    /// downloads it.
    pub fn drop_image(&self, id: &str) {
        docker(&["image", "rm", id]);
    }

    /// For each of `repos`: builds the app as `REPO:v1` on `registry` (its version is the
    /// repository's name), pushes it, and runs `each` containers of it named `REPO-0`,
    /// `REPO-1`...
    pub fn run_pushed(&self, registry: &Registry, repos: &[&str], each: usize) {
        for repo in repos {
            let image = registry.image(repo, "v1");
            self.build_app(&image, repo);
            push(&image);
            for n in 0..each {
                self.run(&format!("{repo}-{n}"), &image, &[]);
            }
        }
    }

    /// Builds the app as `image` and never pushes it, so the engine has no repo digest for it:
    /// what a locally built image looks like.
    pub fn build_local(&self, image: &str) -> String {
        self.build_app(image, "local")
    }

    /// Publishes a multi-arch tag: builds and pushes the app at `repo:tag` as a real
    /// linux/amd64 image, then pushes a linux/arm64 sibling (the same layer under its own config)
    /// and, at `repo:tag`, an OCI image index of both. Returns (index digest, amd64 manifest
    /// digest). The local engine keeps the amd64 image tagged `repo:tag`; call
    /// [`TestBed::forget`] first to pull it afresh.
    pub fn push_multiarch_index(
        &self,
        registry: &Registry,
        repo: &str,
        tag: &str,
    ) -> (String, String) {
        let image = registry.image(repo, tag);
        self.build_app(&image, &format!("{repo}-{tag}-multiarch"));
        let amd64 = push(&image);

        let index = block_on(async {
            let oci = Oci::new(registry, repo);
            let (manifest, amd64_size) = oci.manifest(&amd64).await;
            // Docker's v2 manifest from the classic store, an OCI one from the containerd store.
            let manifest_type = json_str(&manifest, &["mediaType"]);

            // arm64 config: the amd64 one with another architecture, hence another digest.
            let config_digest = json_str(&manifest, &["config", "digest"]);
            let mut config: Value = parse_json(&oci.blob(&config_digest).await, "image config");
            config["architecture"] = json!("arm64");
            config["variant"] = json!("v8");
            let (arm64_config, arm64_config_size) = oci.push_blob(json_bytes(&config)).await;

            let mut arm64_manifest = manifest.clone();
            arm64_manifest["config"]["digest"] = json!(arm64_config);
            arm64_manifest["config"]["size"] = json!(arm64_config_size);
            let (arm64, arm64_size) = oci
                .push_manifest(json_bytes(&arm64_manifest), &manifest_type, None)
                .await;

            let index = json!({
                "schemaVersion": 2,
                "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE,
                "manifests": [
                    {
                        "mediaType": manifest_type,
                        "digest": amd64,
                        "size": amd64_size,
                        "platform": { "architecture": "amd64", "os": "linux" },
                    },
                    {
                        "mediaType": manifest_type,
                        "digest": arm64,
                        "size": arm64_size,
                        "platform": { "architecture": "arm64", "os": "linux", "variant": "v8" },
                    },
                ],
            });
            oci.push_manifest(json_bytes(&index), OCI_IMAGE_INDEX_MEDIA_TYPE, Some(tag))
                .await
                .0
        });
        assert_eq!(
            index,
            registry.manifest_digest(repo, tag),
            "registry serves another digest than the index just pushed at {image}"
        );
        (index, amd64)
    }

    /// Publishes the app at `repo:tag` with OCI media types (OCI manifest, OCI config, OCI
    /// layer), which `docker push` from the classic store never produces: the app is pushed by
    /// docker at `repo:tag-docker`, and its blobs are re-published under an OCI manifest (of
    /// its own bytes, hence its own digest, also where the containerd store pushed OCI types). Returns the OCI
    /// manifest digest. Call [`TestBed::forget`] first to pull it afresh.
    pub fn push_oci(&self, registry: &Registry, repo: &str, tag: &str) -> String {
        let docker_tag = format!("{tag}-docker");
        let source = registry.image(repo, &docker_tag);
        self.build_app(&source, &format!("{repo}-{tag}-oci"));
        let pushed = push(&source);

        let digest = block_on(async {
            let oci = Oci::new(registry, repo);
            let (manifest, _) = oci.manifest(&pushed).await;
            // The blobs are byte-for-byte valid OCI content already; only the media types in
            // the manifest change.
            let mut config = manifest["config"].clone();
            config["mediaType"] = json!(IMAGE_CONFIG_MEDIA_TYPE);
            let layers: Vec<Value> = manifest["layers"]
                .as_array()
                .unwrap_or_else(|| panic!("manifest {pushed} has no layers: {manifest}"))
                .iter()
                .map(|layer| {
                    assert!(
                        [
                            IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE,
                            IMAGE_LAYER_GZIP_MEDIA_TYPE
                        ]
                        .contains(&layer["mediaType"].as_str().unwrap_or_default()),
                        "not a gzip layer: {layer}"
                    );
                    let mut layer = layer.clone();
                    layer["mediaType"] = json!(IMAGE_LAYER_GZIP_MEDIA_TYPE);
                    layer
                })
                .collect();
            let oci_manifest = json!({
                "schemaVersion": 2,
                "mediaType": OCI_IMAGE_MEDIA_TYPE,
                "config": config,
                "layers": layers,
            });
            oci.push_manifest(json_bytes(&oci_manifest), OCI_IMAGE_MEDIA_TYPE, Some(tag))
                .await
                .0
        });
        assert_eq!(
            digest,
            registry.manifest_digest(repo, tag),
            "registry serves another digest than the OCI manifest just pushed at {repo}:{tag}"
        );
        digest
    }

    /// Deletes from the engine every image with a reference (tag or digest) in `repo`
    /// ("127.0.0.1:PORT/NAME"), so that the next pull starts from nothing and leaves exactly the
    /// repo digests that pull records. The images must be this bed's and not used by a container.
    pub fn forget(&self, repo: &str) {
        let ids = docker(&["image", "ls", "--quiet", "--no-trunc", repo]);
        let mut ids: Vec<&str> = ids.split_whitespace().collect();
        ids.sort_unstable();
        ids.dedup();
        if !ids.is_empty() {
            let args: Vec<&str> = ["rmi", "--force"].iter().copied().chain(ids).collect();
            docker(&args);
        }
    }
}

/// The page the test app built by [`TestBed::build_app`] serves at `version`.
pub fn page(version: &str) -> String {
    format!("tidewatch test app version {version}")
}

/// Pushes `image` with docker and returns the manifest digest the registry reported.
pub fn push(image: &str) -> String {
    let output = docker(&["push", image]);
    digest_in_push_output(image, &output)
}

/// The digest in the output of `docker push`, whose last line reads
/// "TAG: digest: sha256:... size: N".
pub fn digest_in_push_output(image: &str, output: &str) -> String {
    output
        .split_whitespace()
        .skip_while(|word| *word != "digest:")
        .nth(1)
        .filter(|digest| digest.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in the output of `docker push {image}`:\n{output}"))
        .to_owned()
}

/// The repo digests ("repo@sha256:...") the engine records for `image`: what a pull or push
/// told it the registry calls this image.
pub fn repo_digests(image: &str) -> Vec<String> {
    let json = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        image,
    ]);
    serde_json::from_str(&json).unwrap_or_else(|error| {
        panic!("RepoDigests of {image} are not a JSON list ({error}): {json}")
    })
}

/// Pulls `image` (a tag or `repo@digest`).
pub fn pull(image: &str) {
    docker(&["pull", "--quiet", image]);
}

/// Tags `source` as `target`.
pub fn tag(source: &str, target: &str) {
    docker(&["tag", source, target]);
}

fn write_app_context(context: &Path, version: &str, entrypoint: &str) {
    let write = |path: &Path, contents: &str| {
        fs::write(path, contents)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    };
    let www = context.join("www");
    fs::create_dir_all(&www)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", www.display()));
    fs::copy(BUSYBOX, context.join("busybox")).unwrap_or_else(|error| {
        panic!("cannot copy {BUSYBOX} into the build context: {error} (run scripts/test-env)")
    });
    write(&www.join("index.html"), &format!("{}\n", page(version)));
    write(
        &context.join("Dockerfile"),
        &format!(
            r#"FROM scratch
COPY busybox /bin/busybox
COPY www /www
ENV APP_VERSION={version}
LABEL tidewatch.test.version={version}
HEALTHCHECK --interval=1s --timeout=2s --retries=3 CMD ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:{APP_PORT}/"]
ENTRYPOINT {entrypoint}
"#
        ),
    );
}

/// Runs a future to completion on a runtime of its own; the tests are plain `#[test]`s and only
/// the oci-client calls are async.
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("cannot build a tokio runtime: {error}"))
        .block_on(future)
}

/// oci-client aimed at one repository of a test registry, panicking with what failed.
pub(super) struct Oci {
    client: Client,
    host: String,
    repo: String,
}

impl Oci {
    pub(super) fn new(registry: &Registry, repo: &str) -> Oci {
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..ClientConfig::default()
        });
        Oci {
            client,
            host: registry.host(),
            repo: repo.to_owned(),
        }
    }

    /// `host/repo:tag` or `host/repo@digest`.
    fn reference(&self, tag_or_digest: &str) -> Reference {
        let separator = if tag_or_digest.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        let text = format!("{}/{}{separator}{tag_or_digest}", self.host, self.repo);
        text.parse()
            .unwrap_or_else(|error| panic!("bad reference {text}: {error}"))
    }

    /// The image manifest at `digest` (Docker's or OCI's media type) as JSON, and its size in
    /// bytes.
    pub(super) async fn manifest(&self, digest: &str) -> (Value, usize) {
        let (body, served) = self
            .client
            .pull_manifest_raw(
                &self.reference(digest),
                &RegistryAuth::Anonymous,
                &[IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE],
            )
            .await
            .unwrap_or_else(|error| panic!("GET manifest {digest} from {}: {error}", self.host));
        assert_eq!(
            served, digest,
            "registry served another manifest than asked for"
        );
        (parse_json(&body, "manifest"), body.len())
    }

    /// The blob at `digest`.
    async fn blob(&self, digest: &str) -> Vec<u8> {
        let mut data = Vec::new();
        self.client
            .pull_blob(&self.reference(digest), digest, &mut data)
            .await
            .unwrap_or_else(|error| panic!("GET blob {digest} from {}: {error}", self.host));
        data
    }

    /// Uploads `data` as a blob; returns its digest and size.
    pub(super) async fn push_blob(&self, data: Vec<u8>) -> (String, usize) {
        let (digest, size) = (sha256(&data), data.len());
        self.client
            .push_blob(&self.reference(&digest), data, &digest)
            .await
            .unwrap_or_else(|error| panic!("push blob {digest} to {}: {error}", self.host));
        (digest, size)
    }

    /// Uploads a manifest at `tag`, or by its digest when `tag` is None; returns its digest and
    /// size.
    pub(super) async fn push_manifest(
        &self,
        body: Vec<u8>,
        media_type: &str,
        tag: Option<&str>,
    ) -> (String, usize) {
        let (digest, size) = (sha256(&body), body.len());
        let content_type = media_type
            .parse()
            .unwrap_or_else(|error| panic!("bad media type {media_type}: {error}"));
        self.client
            .push_manifest_raw(&self.reference(tag.unwrap_or(&digest)), body, content_type)
            .await
            .unwrap_or_else(|error| panic!("push manifest {digest} to {}: {error}", self.host));
        (digest, size)
    }
}

/// "sha256:<hex>" of `data`, with oci-client's own helper so the tests need no hashing crate.
fn sha256(data: &[u8]) -> String {
    Config::oci_v1(data.to_vec(), None).sha256_digest()
}

fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|error| panic!("cannot serialise {value}: {error}"))
}

fn parse_json(bytes: &[u8], what: &str) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|error| {
        panic!(
            "{what} is not JSON ({error}): {}",
            String::from_utf8_lossy(bytes)
        )
    })
}

fn json_str(value: &Value, path: &[&str]) -> String {
    path.iter()
        .fold(value, |value, key| &value[*key])
        .as_str()
        .unwrap_or_else(|| panic!("no string at {} in {value}", path.join(".")))
        .to_owned()
}
