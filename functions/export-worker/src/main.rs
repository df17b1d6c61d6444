#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    export_worker::run().await
}
