#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::run_http_function(projects::FUNCTION, projects::app).await
}
