#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    ai_runs::run().await
}
