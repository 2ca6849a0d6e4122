//! A Lambda function as AWS's Rust runtime runs it: `lambda_runtime::run(service_fn(...))`.
//! It echoes its event with what the runtime's context says, and fails when asked to.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    if payload.get("fail").is_some() {
        return Err("asked to fail".into());
    }
    println!("rust handler saw {payload}");
    Ok(json!({
        "runtime": "rust lambda_runtime",
        "event": payload,
        "request_id": context.request_id,
        "arn": context.invoked_function_arn,
        "function": context.env_config.function_name,
        "memory": context.env_config.memory,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
