#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    email_worker::run().await
}
