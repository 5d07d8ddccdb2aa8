//! A registry login: what the registry adapter presents for a token and the engine passes on
//! for a pull. A leaf both adapters read, so that neither imports the other for it.

/// Username and password for a registry. `Debug` never shows the password.
#[derive(Clone)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}
