#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::run_http_function(workspaces::FUNCTION, workspaces::app).await
}
