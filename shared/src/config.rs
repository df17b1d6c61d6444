//! Typed configuration, read once per cold start.
//!
//! Every setting is an environment variable. `APP_SECRET_IDS` (or one `APP_SECRET_ID`) names the
//! Secrets Manager secrets a function reads: JSON objects whose keys are the same variable
//! names; a key present in a secret wins over the environment, so credentials can live only in
//! secrets, each function holding only those it needs.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `APP_SECRET_IDS` | unset | comma-separated names or ARNs of the function's JSON secrets |
//! | `DATABASE_URL` | required | PostgreSQL URL of the API role (`app_api`) |
//! | `DB_MAX_CONNECTIONS` | 2 | pool size per execution environment |
//! | `DB_ACQUIRE_TIMEOUT_MS` | 3000 | wait for a pooled connection before answering 503 |
//! | `DB_STATEMENT_TIMEOUT_MS` | 10000 | per-statement limit, below API Gateway's 29 s |
//! | `AUTH_OIDC_ISSUERS` | unset | comma-separated issuer URLs whose JWKS signs tokens |
//! | `AUTH_JWKS_URLS` | issuer + `/.well-known/jwks.json` | comma-separated, one per issuer, in the same order |
//! | `AUTH_AUDIENCES` | required with issuers | comma-separated accepted `aud` (or Cognito `client_id`) values |
//! | `AUTH_HS256_SECRET` | unset | enables HS256 tokens (local development only) |
//! | `AUTH_HS256_ISSUER` | `saas-local` | issuer HS256 tokens must carry |
//! | `AUTH_LEEWAY_SECS` | 30 | clock skew allowed on `exp`/`nbf` |
//! | `MAX_BODY_BYTES` | 65536 | larger request bodies get 413 |
//! | `LOG_FORMAT` | `json` | `json` or `pretty` |
//! | `RUST_LOG` | `info` | log filter |

use std::collections::HashMap;
use std::time::Duration;

use secrecy::SecretString;

use crate::secrets::{self, SecretsError};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} must be set")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error(transparent)]
    Secret(#[from] SecretsError),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub max_body_bytes: usize,
    /// Lets webhook endpoints be plain `http` to loopback (local development only).
    pub webhooks_allow_loopback_http: bool,
    /// The S3 bucket workspace exports are written to (`EXPORTS_BUCKET`); exports are refused
    /// without one.
    pub exports_bucket: Option<String>,
    /// The S3 bucket of files on deliverables (`FILES_BUCKET`); uploads are refused without one.
    pub files_bucket: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
    /// Connect to this host instead of the URL's (`DATABASE_PROXY_HOST`: the RDS Proxy endpoint
    /// the template creates), keeping the URL's login, database and options.
    pub host_override: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub oidc: Vec<OidcIssuerConfig>,
    pub audiences: Vec<String>,
    pub hs256: Option<Hs256Config>,
    pub leeway_secs: u64,
}

#[derive(Debug, Clone)]
pub struct OidcIssuerConfig {
    pub issuer: String,
    pub jwks_url: String,
}

#[derive(Debug, Clone)]
pub struct Hs256Config {
    pub secret: SecretString,
    pub issuer: String,
}

pub const DEFAULT_HS256_ISSUER: &str = "saas-local";

/// The variables of one execution environment: the application secret's keys over the
/// environment. Each kind of function builds its own configuration from it.
pub struct Settings {
    secret: HashMap<String, String>,
    env: EnvLookup,
}

type EnvLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

impl Settings {
    /// Reads the environment and the secrets `APP_SECRET_IDS` names.
    pub async fn load() -> Result<Self, ConfigError> {
        Self::load_from(|name| std::env::var(name).ok()).await
    }

    /// As `load`, with the variables read through `env` (the tests pass their own).
    pub async fn load_from(env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Result<Self, ConfigError> {
        let ids = secret_ids(&env);
        let secret = secrets::fetch_json_secrets(&ids).await?;
        Ok(Self { secret, env: Box::new(env) })
    }

    /// Refuses to run with any of `names` in the secrets: a function that must never hold a
    /// credential (an API function and the service role's) stops at its cold start, loudly,
    /// rather than running with more power than it needs.
    pub fn refuse_in_secrets(&self, names: &[&'static str]) -> Result<(), ConfigError> {
        match names.iter().find(|name| self.secret.contains_key(**name)) {
            Some(name) => Err(ConfigError::Invalid {
                name,
                reason: "this function's secrets must not hold it (least privilege: see the secrets layout in docs/configuration.md)"
                    .into(),
            }),
            None => Ok(()),
        }
    }

    /// Settings read only through `env`, with no secret (local tools).
    pub fn from_fn(env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self { secret: HashMap::new(), env: Box::new(env) }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.secret.get(name).cloned().or_else(|| (self.env)(name)).filter(|value| !value.is_empty())
    }

    pub fn require(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing(name))
    }
}

/// The secrets to read: `APP_SECRET_IDS` (comma-separated), or the single `APP_SECRET_ID`.
fn secret_ids(env: &impl Fn(&str) -> Option<String>) -> Vec<String> {
    let ids = list(env("APP_SECRET_IDS"));
    if ids.is_empty() { list(env("APP_SECRET_ID")) } else { ids }
}

/// Credentials no tenant-facing API function may hold: the service and admin roles' database
/// logins see every tenant.
pub const SERVICE_ONLY_SECRETS: [&str; 2] = ["SERVICE_DATABASE_URL", "ADMIN_DATABASE_URL"];

impl Config {
    /// The configuration of an HTTP function, from the environment and its secrets.
    pub async fn load() -> Result<Self, ConfigError> {
        Self::load_from(|name| std::env::var(name).ok()).await
    }

    /// As `load`, with the variables read through `env` (the tests pass their own).
    pub async fn load_from(env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Result<Self, ConfigError> {
        Self::from_settings(&Settings::load_from(env).await?)
    }

    /// An HTTP function's configuration from its loaded settings; refuses service credentials.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        settings.refuse_in_secrets(&SERVICE_ONLY_SECRETS)?;
        Self::from_lookup(|name| settings.get(name))
    }

    /// Builds the configuration from any source of variables (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            database: DatabaseConfig::from_lookup(&lookup, "DATABASE_URL")?,
            auth: AuthConfig::from_lookup(&lookup)?,
            max_body_bytes: parse_or(&lookup, "MAX_BODY_BYTES", 64 * 1024)?,
            webhooks_allow_loopback_http: parse_or(&lookup, "WEBHOOKS_ALLOW_LOOPBACK_HTTP", false)?,
            exports_bucket: lookup("EXPORTS_BUCKET").filter(|bucket| !bucket.is_empty()),
            files_bucket: lookup("FILES_BUCKET").filter(|bucket| !bucket.is_empty()),
        })
    }
}

impl DatabaseConfig {
    /// The pool settings, with the URL read from `url_variable` (`DATABASE_URL` for the API
    /// role, `SERVICE_DATABASE_URL` for workers).
    pub fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
        url_variable: &'static str,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            url: SecretString::from(lookup(url_variable).ok_or(ConfigError::Missing(url_variable))?),
            max_connections: parse_or(lookup, "DB_MAX_CONNECTIONS", 2)?,
            acquire_timeout: Duration::from_millis(parse_or(lookup, "DB_ACQUIRE_TIMEOUT_MS", 3_000)?),
            statement_timeout: Duration::from_millis(parse_or(lookup, "DB_STATEMENT_TIMEOUT_MS", 10_000)?),
            host_override: lookup("DATABASE_PROXY_HOST").map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()),
        })
    }
}

impl AuthConfig {
    /// The token verification settings (`AUTH_OIDC_ISSUERS`, `AUTH_AUDIENCES`, ...).
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let issuers = list(lookup("AUTH_OIDC_ISSUERS"));
        let jwks_urls = list(lookup("AUTH_JWKS_URLS"));
        if !jwks_urls.is_empty() && jwks_urls.len() != issuers.len() {
            return Err(ConfigError::Invalid {
                name: "AUTH_JWKS_URLS",
                reason: "needs one URL per entry of AUTH_OIDC_ISSUERS".into(),
            });
        }
        let oidc = issuers
            .iter()
            .enumerate()
            .map(|(i, issuer)| OidcIssuerConfig {
                issuer: issuer.clone(),
                jwks_url: jwks_urls
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'))),
            })
            .collect::<Vec<_>>();
        let audiences = list(lookup("AUTH_AUDIENCES"));
        if !oidc.is_empty() && audiences.is_empty() {
            return Err(ConfigError::Missing("AUTH_AUDIENCES"));
        }
        let hs256 = lookup("AUTH_HS256_SECRET").map(|secret| Hs256Config {
            secret: SecretString::from(secret),
            issuer: lookup("AUTH_HS256_ISSUER").unwrap_or_else(|| DEFAULT_HS256_ISSUER.to_owned()),
        });
        // Development tokens are compiled into the local stack and the tests only: a deployed
        // function refuses to start rather than ignore a setting someone meant to take effect.
        #[cfg(not(feature = "dev"))]
        if hs256.is_some() {
            return Err(ConfigError::Invalid {
                name: "AUTH_HS256_SECRET",
                reason: "development tokens are accepted only by the local stack and the tests, never by a deployed function"
                    .into(),
            });
        }
        if oidc.is_empty() && hs256.is_none() {
            return Err(ConfigError::Invalid {
                name: "AUTH_OIDC_ISSUERS",
                reason: "set AUTH_OIDC_ISSUERS (or AUTH_HS256_SECRET for local development)".into(),
            });
        }
        Ok(Self { oidc, audiences, hs256, leeway_secs: parse_or(lookup, "AUTH_LEEWAY_SECS", 30)? })
    }
}

fn list(value: Option<String>) -> Vec<String> {
    value.unwrap_or_default().split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()
}

pub fn parse_or<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match lookup(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|e: T::Err| ConfigError::Invalid { name, reason: e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn a_proxy_host_replaces_the_urls_host_and_keeps_the_rest() {
        let url = "postgres://app_api:secret@db.internal:5432/saas?sslmode=require";
        let direct = DatabaseConfig::from_lookup(&lookup(&[("DATABASE_URL", url)]), "DATABASE_URL").unwrap();
        let proxied = DatabaseConfig::from_lookup(
            &lookup(&[("DATABASE_URL", url), ("DATABASE_PROXY_HOST", "saas.proxy-abc.eu-west-1.rds.amazonaws.com")]),
            "DATABASE_URL",
        )
        .unwrap();
        let direct = crate::db::connect_options(&direct, None).unwrap();
        let proxied = crate::db::connect_options(&proxied, None).unwrap();
        assert_eq!(direct.get_host(), "db.internal");
        assert_eq!(proxied.get_host(), "saas.proxy-abc.eu-west-1.rds.amazonaws.com");
        assert_eq!(
            (proxied.get_port(), proxied.get_username(), proxied.get_database()),
            (5432, "app_api", Some("saas"))
        );
        let blank = DatabaseConfig::from_lookup(
            &lookup(&[("DATABASE_URL", url), ("DATABASE_PROXY_HOST", " ")]),
            "DATABASE_URL",
        );
        assert_eq!(blank.unwrap().host_override, None);
    }

    #[test]
    fn jwks_url_defaults_to_the_issuers_well_known_path() {
        let config = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://x"),
            ("AUTH_OIDC_ISSUERS", "https://cognito-idp.eu-west-1.amazonaws.com/pool/, https://x.supabase.co/auth/v1"),
            ("AUTH_AUDIENCES", "client-a"),
        ]))
        .unwrap();
        assert_eq!(
            config.auth.oidc[0].jwks_url,
            "https://cognito-idp.eu-west-1.amazonaws.com/pool/.well-known/jwks.json"
        );
        assert_eq!(config.auth.oidc[1].jwks_url, "https://x.supabase.co/auth/v1/.well-known/jwks.json");
    }

    #[test]
    fn issuers_without_audiences_are_refused() {
        let err = Config::from_lookup(lookup(&[("DATABASE_URL", "postgres://x"), ("AUTH_OIDC_ISSUERS", "https://i")]));
        assert!(matches!(err, Err(ConfigError::Missing("AUTH_AUDIENCES"))));
    }

    #[test]
    fn some_way_to_verify_tokens_is_required() {
        let err = Config::from_lookup(lookup(&[("DATABASE_URL", "postgres://x")]));
        assert!(matches!(err, Err(ConfigError::Invalid { name: "AUTH_OIDC_ISSUERS", .. })));
    }

    #[test]
    #[cfg(feature = "dev")]
    fn debug_output_never_shows_secrets() {
        let config = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://api:hunter2@db/app"),
            ("AUTH_HS256_SECRET", "super-secret-signing-key"),
        ]))
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("super-secret-signing-key"), "{printed}");
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&config.auth.hs256.unwrap().secret),
            "super-secret-signing-key"
        );
    }

    #[test]
    #[cfg(not(feature = "dev"))]
    fn a_production_build_refuses_development_tokens() {
        let err = Config::from_lookup(lookup(&[("DATABASE_URL", "postgres://x"), ("AUTH_HS256_SECRET", "s")]));
        assert!(matches!(err, Err(ConfigError::Invalid { name: "AUTH_HS256_SECRET", .. })));
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        let err = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://x"),
            ("AUTH_OIDC_ISSUERS", "https://issuer.example"),
            ("AUTH_AUDIENCES", "api"),
            ("DB_MAX_CONNECTIONS", "many"),
        ]))
        .unwrap_err();
        assert_eq!(err.to_string(), "DB_MAX_CONNECTIONS is invalid: invalid digit found in string");
    }
}
