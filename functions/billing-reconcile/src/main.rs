#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    billing_reconcile::run().await
}
