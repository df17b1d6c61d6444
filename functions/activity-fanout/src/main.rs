#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    activity_fanout::run().await
}
