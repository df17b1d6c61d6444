#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    billing_worker::run().await
}
