//! A token server for registries in distribution's token mode (`auth.token`), the scheme of
//! GHCR, Docker Hub and most hosted registries: the registry answers 401 with
//! `WWW-Authenticate: Bearer realm=..,service=..,scope=..`, the client asks the realm for a token
//! for that scope, with basic credentials for a private repository, and retries with it.
//!
//! Tokens are JWTs signed ES256 by a test key whose self-signed certificate is the registry's
//! `rootcertbundle`; the certificate travels in the token's `x5c` header, which distribution
//! verifies against that bundle. Every request is recorded with its scopes, its user and its
//! client, so tests can count what tidewatch asked for.
//!
//! Both ways of asking that distribution's token specification describes are served: `GET` with
//! the scopes in the query and basic credentials (Docker's classic engine, tidewatch), and the
//! OAuth2 `POST` with a form body, grant type `password` or `refresh_token` (containerd, and so
//! Docker with the containerd image store, whenever it holds a password).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rcgen::{CertificateParams, DnType, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256};
use serde_json::{json, Value};

use super::serve::{http_server, is_engine_agent, Reply, ServerRequest};
use super::tcp_server::TcpServer;

/// The `service` the registry names in its challenge and expects as the token's audience.
pub const SERVICE: &str = "tidewatch-test-registry";
/// The `iss` of every token, which the registry is configured to trust.
pub const ISSUER: &str = "tidewatch-test-token-server";
/// How long a token is valid, as told to the client in `expires_in`.
const TOKEN_LIFETIME_SECS: u64 = 300;

/// One access grant in a token: `{"type":"repository","name":"app","actions":["pull"]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// `repository`, `registry`...
    pub kind: String,
    /// The repository (or other resource) name.
    pub name: String,
    /// `pull`, `push`, `delete`, `*`.
    pub actions: Vec<String>,
}

impl Access {
    /// Pull access to `repository`.
    pub fn pull(repository: &str) -> Access {
        Access {
            kind: "repository".to_owned(),
            name: repository.to_owned(),
            actions: vec!["pull".to_owned()],
        }
    }

    /// Parses a scope `type:name:action,action`. The name may hold `:` (a registry host with a
    /// port), so the type is up to the first colon and the actions after the last.
    fn parse_scope(scope: &str) -> Option<Access> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        Some(Access {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    fn to_json(&self) -> Value {
        json!({ "type": self.kind, "name": self.name, "actions": self.actions })
    }
}

/// Signs tokens the test registries trust. Cheap to clone.
#[derive(Clone)]
pub struct TokenIssuer {
    key: Arc<EcdsaKeyPair>,
    cert_pem: String,
    /// The certificate, DER in standard base64: the `x5c` header's one element.
    cert_x5c: String,
}

impl TokenIssuer {
    /// A fresh P-256 key and a self-signed certificate for it.
    pub fn new() -> TokenIssuer {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .unwrap_or_else(|error| panic!("token signing key: {error}"));
        let mut params =
            CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|error| panic!("{error}"));
        params
            .distinguished_name
            .push(DnType::CommonName, "tidewatch test token signer");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params
            .self_signed(&key)
            .unwrap_or_else(|error| panic!("token signing certificate: {error}"));
        let signer =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.serialize_der())
                .unwrap_or_else(|error| panic!("token signing key refused: {error}"));
        TokenIssuer {
            key: Arc::new(signer),
            cert_pem: cert.pem(),
            cert_x5c: STANDARD.encode(cert.der()),
        }
    }

    /// Writes the signing certificate, the registry's `rootcertbundle`, to `path`.
    pub fn write_root_bundle(&self, path: &Path) -> PathBuf {
        fs::write(path, &self.cert_pem)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        path.to_owned()
    }

    /// A token for `subject` granting `access`, valid for [`TOKEN_LIFETIME_SECS`].
    pub fn mint(&self, subject: &str, access: &[Access]) -> String {
        static JTI: AtomicU64 = AtomicU64::new(0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or_default();
        let header = json!({ "typ": "JWT", "alg": "ES256", "x5c": [self.cert_x5c] });
        let claims = json!({
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + TOKEN_LIFETIME_SECS,
            // A little slack for clocks: the registry runs on this machine, but rounds.
            "nbf": now - 10,
            "iat": now,
            "jti": format!("tidewatch-test-{}-{}", std::process::id(), JTI.fetch_add(1, Ordering::Relaxed)),
            "access": access.iter().map(Access::to_json).collect::<Vec<_>>(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        // FIXED_SIGNING gives r||s, 64 bytes: the JWS form of an ES256 signature.
        let signature = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .unwrap_or_else(|error| panic!("cannot sign a token: {error}"));
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }
}

/// What the token server did with one request.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// Every scope asked for, as sent (`repository:app:pull`).
    pub scopes: Vec<String>,
    /// The user of the basic credentials, if any were sent.
    pub user: Option<String>,
    /// The client's `User-Agent` (`tidewatch/0.1.0`, `docker/20.10...`).
    pub user_agent: String,
    /// The token handed out, or `None` when the credentials were refused.
    pub token: Option<String>,
    /// What the token grants.
    pub granted: Vec<Access>,
}

struct State {
    users: HashMap<String, String>,
    public: Mutex<HashSet<String>>,
    requests: Mutex<Vec<TokenRequest>>,
    /// Refresh tokens handed out (OAuth2 `access_type=offline`), each with its user.
    refresh_tokens: Mutex<HashMap<String, String>>,
    issuer: TokenIssuer,
    /// `(User-Agent prefix, expires_in)`: what clients of that agent are told about a token's
    /// lifetime (the token itself still expires as minted).
    expires_in_for: Mutex<Option<(String, u64)>>,
    /// `(User-Agent prefix, bytes)`: answers to that agent carry this much padding.
    padding_for: Mutex<Option<(String, usize)>>,
}

/// A running token server. Users authenticate with basic credentials and get what they ask
/// for; anonymous clients get pull access to public repositories only (and a token granting
/// nothing elsewhere, as Docker Hub does, so the registry's refusal is what they see); wrong
/// credentials get a 401.
pub struct TokenServer {
    server: TcpServer,
    state: Arc<State>,
}

impl TokenServer {
    /// Starts a token server that knows `users` as `(name, password)`.
    pub fn start(users: &[(&str, &str)]) -> TokenServer {
        let state = Arc::new(State {
            users: users
                .iter()
                .map(|(user, password)| ((*user).to_owned(), (*password).to_owned()))
                .collect(),
            public: Mutex::default(),
            requests: Mutex::default(),
            refresh_tokens: Mutex::default(),
            issuer: TokenIssuer::new(),
            expires_in_for: Mutex::default(),
            padding_for: Mutex::default(),
        });
        let handling = Arc::clone(&state);
        let server = http_server(move |request| handle(&handling, request));
        TokenServer { server, state }
    }

    /// The token endpoint: the registry's `auth.token.realm`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.server.host())
    }

    /// The key and certificate tokens are signed with.
    pub fn issuer(&self) -> &TokenIssuer {
        &self.state.issuer
    }

    /// Lets anonymous clients pull `repository`.
    pub fn make_public(&self, repository: &str) {
        lock(&self.state.public).insert(repository.to_owned());
    }

    /// Tells clients whose `User-Agent` starts with `agent` that tokens last `seconds`
    /// (`expires_in`), whatever the tokens say: a hostile or buggy token endpoint. Others (the
    /// engine, whose Go client refuses numbers beyond `int64`) are told the truth.
    pub fn answer_expires_in(&self, agent: &str, seconds: u64) {
        *lock(&self.state.expires_in_for) = Some((agent.to_owned(), seconds));
    }

    /// Pads the answers to clients whose `User-Agent` starts with `agent` with `bytes` bytes of
    /// an extra field: an endpoint that sends far more than a token.
    pub fn pad_answers(&self, agent: &str, bytes: usize) {
        *lock(&self.state.padding_for) = Some((agent.to_owned(), bytes));
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        lock(&self.state.requests).clone()
    }

    /// The requests made by clients whose `User-Agent` starts with `agent` (e.g. "tidewatch/").
    pub fn requests_from(&self, agent: &str) -> Vec<TokenRequest> {
        self.requests()
            .into_iter()
            .filter(|request| request.user_agent.starts_with(agent))
            .collect()
    }

    /// The requests made by the container engine (dockerd, or the containerd under it),
    /// whichever of them fetches tokens for its pushes and pulls.
    pub fn requests_from_engine(&self) -> Vec<TokenRequest> {
        self.requests()
            .into_iter()
            .filter(|request| is_engine_agent(&request.user_agent))
            .collect()
    }

    /// How many requests clients whose `User-Agent` starts with `agent` made for each scope.
    pub fn scope_counts(&self, agent: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for request in self.requests_from(agent) {
            for scope in request.scopes {
                *counts.entry(scope).or_default() += 1;
            }
        }
        counts
    }
}

fn handle(state: &State, request: &ServerRequest) -> Reply {
    if request.path() != "/token" {
        return Reply::status(404, &[]);
    }
    match request.method.as_str() {
        "GET" => get_token(state, request),
        "POST" => post_token(state, request),
        _ => Reply::status(405, &[("Allow", "GET, POST")]),
    }
}

/// `GET /token?service=..&scope=..`, with basic credentials or none.
fn get_token(state: &State, request: &ServerRequest) -> Reply {
    let scopes = split_scopes(&request.query_values("scope"));
    let credentials = request.header("Authorization").and_then(basic_credentials);
    let mut record = new_record(request, scopes, credentials.as_ref().map(|(user, _)| user));
    let authenticated = match &credentials {
        Some((user, password)) => {
            if state.users.get(user) != Some(password) {
                return refuse(state, record, "invalid username or password");
            }
            true
        }
        None => false,
    };
    let token = grant(state, &mut record, authenticated);
    let (expires_in, padding) = quirks(state, &record.user_agent);
    lock(&state.requests).push(record);
    Reply::json(
        200,
        &json!({ "token": token, "access_token": token, "expires_in": expires_in, "padding": padding }),
    )
}

/// `POST /token` with an OAuth2 form: `grant_type=password` with `username` and `password`, or
/// `grant_type=refresh_token` with a `refresh_token` this server handed out; `scope` holds the
/// scopes separated by spaces. With `access_type=offline` the answer carries a refresh token.
/// A refused grant is a 401, on which containerd falls back to `GET` with basic credentials.
fn post_token(state: &State, request: &ServerRequest) -> Reply {
    let field = |name: &str| request.form_values(name).into_iter().next();
    let scopes = split_scopes(&request.form_values("scope"));
    let invalid = |error: &str, description: &str| {
        Reply::json(
            400,
            &json!({ "error": error, "error_description": description }),
        )
    };
    if field("client_id").is_none_or(|id| id.is_empty()) {
        return invalid("invalid_request", "client_id is required");
    }
    let user = match field("grant_type").as_deref() {
        Some("password") => {
            let user = field("username").unwrap_or_default();
            let password = field("password").unwrap_or_default();
            if state.users.get(&user) != Some(&password) {
                let record = new_record(request, scopes, Some(&user));
                return refuse(state, record, "invalid username or password");
            }
            user
        }
        Some("refresh_token") => {
            let presented = field("refresh_token").unwrap_or_default();
            let known = lock(&state.refresh_tokens).get(&presented).cloned();
            match known {
                Some(user) => user,
                None => {
                    let record = new_record(request, scopes, None);
                    return refuse(state, record, "unknown refresh token");
                }
            }
        }
        _ => {
            return invalid(
                "unsupported_grant_type",
                "grant_type is password or refresh_token",
            )
        }
    };

    let mut record = new_record(request, scopes, Some(&user));
    let token = grant(state, &mut record, true);
    let granted_scopes: Vec<String> = record
        .granted
        .iter()
        .map(|access| {
            format!(
                "{}:{}:{}",
                access.kind,
                access.name,
                access.actions.join(",")
            )
        })
        .collect();
    let (expires_in, padding) = quirks(state, &record.user_agent);
    let mut answer = json!({
        "access_token": token,
        "scope": granted_scopes.join(" "),
        "expires_in": expires_in,
        "padding": padding,
    });
    if field("access_type").as_deref() == Some("offline") {
        let refresh = format!("tidewatch-test-refresh-{}", unique());
        lock(&state.refresh_tokens).insert(refresh.clone(), user);
        answer["refresh_token"] = json!(refresh);
    }
    lock(&state.requests).push(record);
    Reply::json(200, &answer)
}

/// Scopes as sent: each parameter or field may carry several, separated by spaces.
fn split_scopes(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|value| value.split(' '))
        .filter(|scope| !scope.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The record of a request not yet answered.
fn new_record(request: &ServerRequest, scopes: Vec<String>, user: Option<&String>) -> TokenRequest {
    TokenRequest {
        scopes,
        user: user.cloned(),
        user_agent: request.header("User-Agent").unwrap_or_default().to_owned(),
        token: None,
        granted: Vec::new(),
    }
}

/// Records a refused request and answers it 401.
fn refuse(state: &State, record: TokenRequest, why: &str) -> Reply {
    lock(&state.requests).push(record);
    Reply::json(
        401,
        &json!({"errors": [{"code": "UNAUTHORIZED", "message": why}]}),
    )
}

/// Fills in what `record` is granted and mints the token: an authenticated user every scope it
/// asks for, as a token server grants a repository's owner; anyone else pull on public
/// repositories only.
fn grant(state: &State, record: &mut TokenRequest, authenticated: bool) -> String {
    let public = lock(&state.public).clone();
    record.granted = record
        .scopes
        .iter()
        .filter_map(|scope| Access::parse_scope(scope))
        .filter_map(|mut access| {
            if !authenticated {
                let readable = access.kind == "repository" && public.contains(&access.name);
                access.actions.retain(|action| readable && action == "pull");
            }
            (!access.actions.is_empty()).then_some(access)
        })
        .collect();
    let subject = record.user.clone().unwrap_or_default();
    let token = state.issuer.mint(&subject, &record.granted);
    record.token = Some(token.clone());
    token
}

/// What clients of `user_agent` are told of a token's lifetime, and the padding their answers
/// carry: what [`TokenServer::answer_expires_in`] and its padding sibling set up.
fn quirks(state: &State, user_agent: &str) -> (u64, String) {
    let expires_in = match &*lock(&state.expires_in_for) {
        Some((agent, seconds)) if user_agent.starts_with(agent.as_str()) => *seconds,
        _ => TOKEN_LIFETIME_SECS,
    };
    let padding = match &*lock(&state.padding_for) {
        Some((agent, bytes)) if user_agent.starts_with(agent.as_str()) => "x".repeat(*bytes),
        _ => String::new(),
    };
    (expires_in, padding)
}

/// A number no other call in this process gets.
fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `Basic base64(user:password)` → (user, password).
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Locks a mutex, carrying on if a panicking thread poisoned it: the data is plain records.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn scopes_parse_with_hosts_and_several_actions() {
    assert_eq!(
        Access::parse_scope("repository:team/app:pull,push"),
        Some(Access {
            kind: "repository".to_owned(),
            name: "team/app".to_owned(),
            actions: vec!["pull".to_owned(), "push".to_owned()],
        })
    );
    assert_eq!(
        Access::parse_scope("repository:127.0.0.1:5000/app:pull").map(|a| a.name),
        Some("127.0.0.1:5000/app".to_owned())
    );
    assert_eq!(Access::parse_scope("nonsense"), None);
}

#[test]
fn a_minted_token_is_a_three_part_jws_naming_its_certificate() {
    let issuer = TokenIssuer::new();
    let token = issuer.mint("ci", &[Access::pull("app")]);
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let decode = |part: &str| -> Value {
        serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(part)
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let header = decode(parts[0]);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["x5c"][0], issuer.cert_x5c.as_str());
    let claims = decode(parts[1]);
    assert_eq!(claims["aud"], SERVICE);
    assert_eq!(claims["access"][0]["name"], "app");
    let signature = URL_SAFE_NO_PAD
        .decode(parts[2])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(signature.len(), 64, "ES256 signatures are r||s");
}

#[test]
fn the_token_server_grants_users_what_they_ask_and_anonymous_only_public_pulls() {
    let server = TokenServer::start(&[("ci", "s3cret")]);
    server.make_public("open");
    let host = server
        .realm()
        .trim_start_matches("http://")
        .replace("/token", "");
    let ask = |query: &str, auth: Option<&str>| {
        let basic = auth.map(|a| format!("Basic {}", STANDARD.encode(a)));
        let mut headers = vec![("User-Agent", "self-test/1")];
        if let Some(basic) = &basic {
            headers.push(("Authorization", basic));
        }
        super::http::request(
            &host,
            "GET",
            &format!("/token?service={SERVICE}&{query}"),
            &headers,
            std::time::Duration::from_secs(5),
        )
        .unwrap_or_else(|error| panic!("token request: {error}"))
    };

    assert_eq!(
        ask("scope=repository%3Aapp%3Apull", Some("ci:s3cret")).status,
        200
    );
    assert_eq!(
        ask("scope=repository%3Aapp%3Apull", Some("ci:wrong")).status,
        401
    );
    assert_eq!(ask("scope=repository%3Aapp%3Apull", None).status, 200);
    assert_eq!(
        ask("scope=repository%3Aopen%3Apull%2Cpush", None).status,
        200
    );

    let requests = server.requests_from("self-test/");
    let granted: Vec<Vec<Access>> = requests.iter().map(|r| r.granted.clone()).collect();
    assert_eq!(granted[0], [Access::pull("app")]);
    assert!(requests[1].token.is_none(), "wrong password, no token");
    assert!(
        granted[2].is_empty(),
        "anonymous gets nothing on a private repo"
    );
    assert_eq!(
        granted[3],
        [Access::pull("open")],
        "anonymous may only pull"
    );
    assert_eq!(
        server.scope_counts("self-test/").get("repository:app:pull"),
        Some(&3)
    );
    assert!(requests.iter().all(|r| r.user_agent == "self-test/1"));
}

#[test]
fn the_token_server_takes_oauth2_password_and_refresh_token_grants_as_containerd_posts_them() {
    let server = TokenServer::start(&[("ci", "s3cret")]);
    let host = server
        .realm()
        .trim_start_matches("http://")
        .replace("/token", "");
    let post = |form: &str| {
        let response = super::http::send(
            &host,
            "POST",
            "/token",
            &[
                ("User-Agent", "containerd/2.1.9"),
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                ),
            ],
            format!("client_id=containerd-client&service={SERVICE}&{form}").as_bytes(),
            std::time::Duration::from_secs(5),
        )
        .unwrap_or_else(|error| panic!("token request: {error}"));
        let body: Value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
        (response.status, body)
    };
    let scope = "scope=repository%3Aapp%3Apull+repository%3Aapp%3Apull%2Cpush";

    let (status, answer) = post(&format!(
        "grant_type=password&username=ci&password=s3cret&access_type=offline&{scope}"
    ));
    assert_eq!(status, 200, "{answer}");
    assert!(answer["access_token"].is_string(), "{answer}");
    assert_eq!(
        answer["scope"], "repository:app:pull repository:app:pull,push",
        "{answer}"
    );
    let refresh = answer["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        !refresh.is_empty(),
        "offline access gets a refresh token: {answer}"
    );

    let (status, answer) = post(&format!(
        "grant_type=password&username=ci&password=wrong&{scope}"
    ));
    assert_eq!(status, 401, "{answer}");
    let (status, answer) = post(&format!(
        "grant_type=refresh_token&refresh_token={refresh}&{scope}"
    ));
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post(&format!(
        "grant_type=refresh_token&refresh_token=forged&{scope}"
    ));
    assert_eq!(status, 401, "{answer}");
    let (status, answer) = post("grant_type=client_credentials");
    assert_eq!(status, 400, "{answer}");

    let requests = server.requests_from_engine();
    let users: Vec<Option<&str>> = requests.iter().map(|r| r.user.as_deref()).collect();
    assert_eq!(users, [Some("ci"), Some("ci"), Some("ci"), None]);
    let granted: Vec<bool> = requests.iter().map(|r| r.token.is_some()).collect();
    assert_eq!(granted, [true, false, true, false]);
    assert_eq!(
        requests[2].granted,
        [
            Access::pull("app"),
            Access {
                kind: "repository".to_owned(),
                name: "app".to_owned(),
                actions: vec!["pull".to_owned(), "push".to_owned()],
            }
        ],
        "a refresh token grants what its user may"
    );
}
