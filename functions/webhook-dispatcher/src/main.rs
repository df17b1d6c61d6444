#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    webhook_dispatcher::run().await
}
