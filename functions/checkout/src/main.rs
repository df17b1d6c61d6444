#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::billing::run_billing_function(checkout::FUNCTION, checkout::app).await
}
