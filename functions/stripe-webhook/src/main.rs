// A Lambda environment handles one event at a time: one thread, so no wake-ups across threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    stripe_webhook::run().await
}
