#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    realtime::run().await
}
