// A Lambda environment handles one event at a time: one thread, so no wake-ups across threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::run_http_function(workspaces::FUNCTION, workspaces::app).await
}
