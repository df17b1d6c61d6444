//! Answers every event with a fixed API Gateway response: what a Lambda function costs with
//! nothing of its own (the runtime client, one thread of tokio, serde_json).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async {
        Ok::<_, Error>(json!({"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "hello"}))
    }))
    .await
}
