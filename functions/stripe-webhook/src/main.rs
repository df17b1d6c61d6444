#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    stripe_webhook::run().await
}
