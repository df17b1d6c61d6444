//! A JWKS cache for one issuer, kept for the life of the execution environment.
//!
//! Keys are fetched on first use and again when a token names a key id we do not know (key
//! rotation), at most once per `MIN_REFRESH_INTERVAL` so random key ids cannot make us hammer the
//! identity provider. After `MAX_AGE` the set is refreshed; if that fails the old keys stay.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};

const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
const MAX_AGE: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub(crate) struct VerificationKey {
    pub key: Arc<DecodingKey>,
    pub algorithm: Algorithm,
}

#[derive(Default)]
struct Keys {
    by_id: HashMap<String, VerificationKey>,
    fetched_at: Option<Instant>,
}

pub(crate) struct JwksCache {
    url: String,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    refreshing: Mutex<()>,
}

impl JwksCache {
    pub fn new(url: String, http: reqwest::Client) -> Self {
        Self { url, http, keys: RwLock::default(), refreshing: Mutex::new(()) }
    }

    /// Fetches the set now (an execution environment's init, beside opening the database), so
    /// the first request does not wait for the identity provider. A failure is only logged: the
    /// first request fetches again.
    pub async fn prefetch(&self) {
        let _refresh = self.refreshing.lock().await;
        if self.keys.read().await.fetched_at.is_some() {
            return;
        }
        match self.fetch().await {
            Ok(fresh) => *self.keys.write().await = Keys { by_id: fresh, fetched_at: Some(Instant::now()) },
            Err(reason) => tracing::warn!(%reason, "JWKS prefetch failed; the first request fetches it"),
        }
    }

    /// The key with this id, fetching the set if needed. `Ok(None)`: the issuer has no such key.
    pub async fn key(&self, kid: &str) -> Result<Option<VerificationKey>, String> {
        if let Some(key) = self.cached(kid).await {
            return Ok(Some(key));
        }
        // One refresh at a time; whoever waited re-checks what the refresh brought.
        let _refresh = self.refreshing.lock().await;
        let recently = {
            let keys = self.keys.read().await;
            if let Some(key) = keys.by_id.get(kid) {
                return Ok(Some(key.clone()));
            }
            keys.fetched_at.is_some_and(|at| at.elapsed() < MIN_REFRESH_INTERVAL)
        };
        if recently {
            return Ok(None);
        }
        let fresh = self.fetch().await?;
        let mut keys = self.keys.write().await;
        *keys = Keys { by_id: fresh, fetched_at: Some(Instant::now()) };
        Ok(keys.by_id.get(kid).cloned())
    }

    /// A known key; past `MAX_AGE` the set is refreshed first, keeping the old keys if that fails
    /// so an unreachable identity provider does not lock users out.
    async fn cached(&self, kid: &str) -> Option<VerificationKey> {
        let key = {
            let keys = self.keys.read().await;
            let key = keys.by_id.get(kid)?.clone();
            if keys.fetched_at.is_some_and(|at| at.elapsed() < MAX_AGE) {
                return Some(key);
            }
            key
        };
        let _refresh = self.refreshing.lock().await;
        {
            let keys = self.keys.read().await;
            if keys.fetched_at.is_some_and(|at| at.elapsed() < MAX_AGE) {
                return keys.by_id.get(kid).cloned(); // refreshed while we waited
            }
        }
        // Fetched without holding the keys' lock: other requests keep verifying meanwhile.
        let fetched = self.fetch().await;
        let mut keys = self.keys.write().await;
        match fetched {
            Ok(fresh) => {
                *keys = Keys { by_id: fresh, fetched_at: Some(Instant::now()) };
                keys.by_id.get(kid).cloned()
            }
            Err(reason) => {
                tracing::warn!(%reason, "JWKS refresh failed; keeping the cached keys");
                keys.fetched_at = Some(Instant::now());
                Some(key)
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, VerificationKey>, String> {
        let response = self
            .http
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("GET {}: {e}", self.url))?;
        let set: JwkSet = response.json().await.map_err(|e| format!("JWKS at {} is not valid: {e}", self.url))?;
        Ok(set.keys.iter().filter_map(|jwk| Some((jwk.common.key_id.clone()?, verification_key(jwk)?))).collect())
    }
}

/// The algorithm a signing key is for: the JWK's `alg` when present, else implied by its type.
/// Keys for encryption, symmetric keys and unsupported curves are skipped.
fn verification_key(jwk: &Jwk) -> Option<VerificationKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::RS384)) => Algorithm::RS384,
        (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::RS512)) => Algorithm::RS512,
        (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::PS256)) => Algorithm::PS256,
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES384))
            if ec.curve == EllipticCurve::P384 =>
        {
            Algorithm::ES384
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerificationKey { key: Arc::new(key), algorithm })
}
