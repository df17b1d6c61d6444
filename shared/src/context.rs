//! What one request carries beside its handler's arguments: its id (for error bodies and logs)
//! and the rate limits its opening counted it against (for the response's headers). Set by the
//! HTTP layers, written and read by the database code and the error type; a leaf, so none of
//! them imports another to reach it.

use std::future::Future;
use std::sync::Mutex;

tokio::task_local! {
    static REQUEST_ID: String;
    static QUOTAS: Mutex<Vec<Quota>>;
}

/// One limit the request counted against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// `workspace`, `user`, `api_key` or `expensive`.
    pub policy: String,
    /// Requests per window.
    pub quota: u32,
    pub remaining: u32,
    /// Seconds until the limit is whole again.
    pub reset: u32,
}

/// Runs `request` with `id` as its request id.
pub async fn with_request_id<F: Future>(id: String, request: F) -> F::Output {
    REQUEST_ID.scope(id, request).await
}

/// The id of the request being served, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `request` with room for the limits it is counted against, and answers them with its
/// output.
pub async fn with_quotas<F: Future>(request: F) -> (F::Output, Vec<Quota>) {
    QUOTAS
        .scope(Mutex::new(Vec::new()), async {
            let output = request.await;
            let quotas = QUOTAS.with(|cell| cell.lock().map(|q| q.clone()).unwrap_or_default());
            (output, quotas)
        })
        .await
}

/// Notes the limits of the request being served (outside a request, nothing happens).
pub fn record_quotas(quotas: Vec<Quota>) {
    let _ = QUOTAS.try_with(|cell| {
        if let Ok(mut current) = cell.lock() {
            *current = quotas;
        }
    });
}
