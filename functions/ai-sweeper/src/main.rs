#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ai_sweeper::run().await
}
