#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    usage_worker::run().await
}
