//! How every function starts on Lambda, written once: telemetry, the settings (and secrets),
//! the function's one constructor, then the runtime loop for its kind of event.
//!
//! A function's state has one constructor from [`Settings`] ([`FromSettings`]); the function is
//! an [`Http`] router over its state, a [`Worker`] (SQS batches and scheduled tasks), or, for
//! events of their own kinds (the authorizer, the WebSocket API), a handler started by
//! [`events`]. Its `main.rs` is one [`main!`](crate::main). The local stack and the tests build
//! every function through the same constructor.

#[cfg(feature = "events")]
pub mod batch;
#[cfg(feature = "events")]
mod worker;

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::Settings;

#[cfg(feature = "events")]
pub use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
#[doc(hidden)]
pub use serde_json::{Map, Value};
#[cfg(feature = "events")]
pub use worker::{Event, NoTask, Sweep, Worker, handle_event, worker};

/// What starting a function can fail with (configuration, secrets, the database), and what
/// the Lambda runtime reports for a failed invocation.
pub type Error = lambda_http::Error;

/// A function's state, built once per execution environment from its settings: the one
/// constructor `main.rs`, the local stack and the tests all call.
pub trait FromSettings: Sized + Send + Sync + 'static {
    fn from_settings(settings: &Settings) -> impl Future<Output = Result<Self, Error>> + Send;
}

/// A function behind API Gateway's HTTP API (or a Function URL): its state and its router.
pub trait Http {
    /// For logs, metrics and the `x-function` of traces.
    const NAME: &'static str;
    type State: FromSettings;

    /// Every route the function serves, with the shared layers.
    fn app(state: Self::State) -> axum::Router;
}

/// Builds `F`'s router from settings: what Lambda runs, and what the local stack and the tests
/// serve.
pub async fn build<F: Http>(settings: &Settings) -> Result<axum::Router, Error> {
    Ok(F::app(F::State::from_settings(settings).await?))
}

/// Declares the crate's HTTP function, `Function`, named by the crate's `FUNCTION`:
/// `shared::http_function!(AppState, |state| shared::http::finish(router(), state, FUNCTION));`
#[macro_export]
macro_rules! http_function {
    ($state:ty, |$s:ident| $app:expr) => {
        /// The function, as Lambda, the local stack and the tests run it.
        pub struct Function;

        impl $crate::runtime::Http for Function {
            const NAME: &'static str = FUNCTION;
            type State = $state;

            fn app($s: $state) -> ::axum::Router {
                $app
            }
        }
    };
}

/// `F`'s router over a state built already (the tests' functions share one database pool).
pub fn app<F: Http>(state: F::State) -> axum::Router {
    F::app(state)
}

/// Starts `F` on Lambda as an HTTP function.
pub async fn http<F: Http>() -> Result<(), Error> {
    let settings = start(F::NAME).await?;
    lambda_http::run(build::<F>(&settings).await?).await
}

/// Starts a function whose events are of its own kind `E` (an authorizer's requests, a
/// WebSocket API's messages) on Lambda, each answered by `handle` with the function's state.
pub async fn events<S, E, R, H, Fut>(name: &'static str, handle: H) -> Result<(), Error>
where
    S: FromSettings,
    E: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    H: Fn(&'static S, E) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send,
{
    let settings = start(name).await?;
    let state: &'static S = Box::leak(Box::new(S::from_settings(&settings).await?));
    let handle = &handle;
    lambda_http::lambda_runtime::run(lambda_http::lambda_runtime::service_fn(
        move |event: lambda_http::lambda_runtime::LambdaEvent<E>| async move {
            Ok::<R, Error>(handle(state, event.payload).await)
        },
    ))
    .await
}

/// Telemetry, then the settings (and secrets), read once at cold start.
async fn start(name: &'static str) -> Result<Settings, Error> {
    crate::telemetry::init(name);
    Ok(Settings::load().await?)
}

/// A function's whole `main.rs`: `shared::main!(http, workspaces::Function);`,
/// `shared::main!(worker, email_worker::Mailer);`, or for events of its own kind
/// `shared::main!(events, authorizer::FUNCTION, authorizer::handle);`.
///
/// A Lambda environment handles one event at a time: the runtime has one thread, so no
/// wake-ups across threads.
#[macro_export]
macro_rules! main {
    (events, $name:expr, $handle:expr) => {
        #[::tokio::main(flavor = "current_thread")]
        async fn main() -> Result<(), $crate::runtime::Error> {
            $crate::runtime::events($name, $handle).await
        }
    };
    ($kind:ident, $function:ty) => {
        #[::tokio::main(flavor = "current_thread")]
        async fn main() -> Result<(), $crate::runtime::Error> {
            $crate::runtime::$kind::<$function>().await
        }
    };
}
