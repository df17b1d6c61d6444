#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    admin::run().await
}
