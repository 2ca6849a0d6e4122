//! Asynchronous invocation configurations (`/2019-09-25/functions/{name}/event-invoke-config`):
//! Put (replaces: absent fields take Lambda's defaults, 2 retries and 6 hours), Update
//! (`POST`, merges with what is stored), Get, Delete (204) and List (`.../list`). They are the
//! function's delivery config (decision 0028), the one Gust's own API and `gust action
//! delivery` show: `MaximumRetryAttempts` 0 to 2 (Lambda's range), `MaximumEventAgeInSeconds`
//! 60 to 21,600, `DestinationConfig.OnSuccess|OnFailure.Destination` a function's ARN (sent
//! the destination record as its event), or Gust's `action:`, `trigger:` or `subject:`
//! destinations. SQS, SNS, EventBridge and S3 destinations are refused with a 400 saying so.
//! Only `$LATEST` has one.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gust_controller::ControllerError;
use gust_events::{DeliveryPut, EventError};
use gust_model::{DeliveryConfig, lambda as model};
use serde_json::{Map, Value, json};

use super::error::LambdaError;
use super::functions::query;
use super::sigv4::Signed;
use super::{FunctionRef, LATEST};
use crate::Gateway;

/// Lambda's range of `MaximumRetryAttempts`.
const MAX_RETRIES: u64 = 2;

impl From<EventError> for LambdaError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::Core(e) => e.into(),
            other => LambdaError::invalid_parameter(other.to_string()),
        }
    }
}

/// The function a request names (`$LATEST` only), checked to be a Lambda function.
async fn function(
    gw: &Gateway,
    name: &str,
    q: &Option<String>,
    signed: &Signed,
) -> Result<FunctionRef, LambdaError> {
    let q = query(q);
    let f = FunctionRef::latest(name, q.get("Qualifier").map(String::as_str), &signed.region)?;
    super::functions::function(gw, &signed.who, &f, &signed.region, false).await?;
    Ok(f)
}

/// A `1 validation error detected` 400 about `field`.
fn invalid(field: &str, value: &Value, constraint: &str) -> LambdaError {
    LambdaError::invalid_parameter(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
    ))
}

/// The Gust destination a `Destination` names: a function ARN (this account's, `$LATEST`)
/// is `action:NAME`; Gust's own forms pass as they are.
fn destination(text: &str, field: &str) -> Result<Option<String>, LambdaError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if ["action:", "trigger:", "subject:"]
        .iter()
        .any(|p| text.starts_with(p))
    {
        return Ok(Some(text.to_string()));
    }
    if text.starts_with("arn:") && text.split(':').nth(2) == Some("lambda") {
        let f = FunctionRef::parse(text)?;
        if f.qualifier.as_deref().is_some_and(|q| q != LATEST) {
            return Err(LambdaError::invalid_parameter(format!(
                "{field}: Gust keeps only $LATEST of a function, not '{text}'."
            )));
        }
        return Ok(Some(format!("action:{}", f.name)));
    }
    Err(LambdaError::invalid_parameter(format!(
        "{field}: Gust sends destination records to Lambda functions (their ARN) and to its own action:NAME, trigger:NAME and subject:SUBJECT destinations; '{text}' is none of them (SQS, SNS, EventBridge and S3 destinations are not served)."
    )))
}

/// A stored destination as Lambda shows it: a function in no package by its ARN.
fn shown_destination(text: &str, region: &str) -> String {
    match text.strip_prefix("action:") {
        Some(name) if !name.contains('/') => model::function_arn(region, name),
        _ => text.to_string(),
    }
}

/// The fields of a Put or Update body over `base`: only those present change.
fn apply(body: &Map<String, Value>, mut base: DeliveryPut) -> Result<DeliveryPut, LambdaError> {
    for key in body.keys() {
        if !matches!(
            key.as_str(),
            "MaximumRetryAttempts" | "MaximumEventAgeInSeconds" | "DestinationConfig"
        ) {
            return Err(LambdaError::invalid_parameter(format!(
                "Unknown field '{key}' (an event invoke config has MaximumRetryAttempts, MaximumEventAgeInSeconds and DestinationConfig)."
            )));
        }
    }
    if let Some(v) = body.get("MaximumRetryAttempts").filter(|v| !v.is_null()) {
        let n = v.as_u64().filter(|n| *n <= MAX_RETRIES).ok_or_else(|| {
            invalid(
                "maximumRetryAttempts",
                v,
                "Member must have value less than or equal to 2 and greater than or equal to 0",
            )
        })?;
        base.maximum_retry_attempts = n as u32;
    }
    if let Some(v) = body
        .get("MaximumEventAgeInSeconds")
        .filter(|v| !v.is_null())
    {
        let n = v
            .as_u64()
            .filter(|n| (60..=21_600).contains(n))
            .ok_or_else(|| {
                invalid(
                    "maximumEventAgeInSeconds",
                    v,
                    "Member must have value less than or equal to 21600 and greater than or equal to 60",
                )
            })?;
        base.maximum_event_age_in_seconds = n;
    }
    if let Some(config) = body.get("DestinationConfig").filter(|v| !v.is_null()) {
        let config = config.as_object().ok_or_else(|| {
            LambdaError::invalid_parameter("DestinationConfig must be an object.")
        })?;
        for (field, slot) in [
            ("OnSuccess", &mut base.on_success),
            ("OnFailure", &mut base.on_failure),
        ] {
            let Some(d) = config.get(field).filter(|v| !v.is_null()) else {
                continue;
            };
            let text = match d.get("Destination") {
                None | Some(Value::Null) => "",
                Some(Value::String(s)) => s.as_str(),
                Some(_) => {
                    return Err(LambdaError::invalid_parameter(format!(
                        "DestinationConfig.{field}.Destination must be a string."
                    )));
                }
            };
            *slot = destination(text, &format!("DestinationConfig.{field}.Destination"))?;
        }
    }
    Ok(base)
}

/// A config as Lambda answers it.
fn shown(c: &DeliveryConfig, region: &str) -> Value {
    let dest = |d: &Option<String>| match d {
        Some(d) => json!({ "Destination": shown_destination(d, region) }),
        None => json!({}),
    };
    json!({
        "FunctionArn": format!("{}:{LATEST}", model::function_arn(region, &c.action)),
        "MaximumRetryAttempts": c.maximum_retry_attempts,
        "MaximumEventAgeInSeconds": c.maximum_event_age_in_seconds,
        "LastModified": c.updated as f64 / 1000.0,
        "DestinationConfig": {
            "OnSuccess": dest(&c.on_success),
            "OnFailure": dest(&c.on_failure),
        },
    })
}

fn no_config(f: &FunctionRef, region: &str) -> LambdaError {
    LambdaError::not_found(format!(
        "The function {} doesn't have an EventInvokeConfig",
        model::function_arn(region, &f.name)
    ))
}

fn body_of(signed: &Signed) -> Result<Map<String, Value>, LambdaError> {
    if signed.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&signed.body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(LambdaError::invalid_parameter(
            "The request body is not an event invoke config (a JSON object).",
        )),
    }
}

/// Writes `put` as `f`'s config.
async fn write(
    gw: &Gateway,
    signed: &Signed,
    f: &FunctionRef,
    put: DeliveryPut,
) -> Result<Response, LambdaError> {
    let c = gw
        .events
        .put_delivery_config(&signed.who, None, "_", &f.name, put)
        .await?;
    Ok(axum::Json(shown(&c, &signed.region)).into_response())
}

/// `PUT .../event-invoke-config`: replaces the config.
pub(crate) async fn put(
    State(gw): State<Gateway>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    signed: Signed,
) -> Result<Response, LambdaError> {
    let body = body_of(&signed)?;
    let put = apply(&body, DeliveryPut::default())?;
    let f = function(&gw, &name, &q, &signed).await?;
    write(&gw, &signed, &f, put).await
}

/// `POST .../event-invoke-config`: merges with the stored config (or the defaults).
pub(crate) async fn update(
    State(gw): State<Gateway>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    signed: Signed,
) -> Result<Response, LambdaError> {
    let body = body_of(&signed)?;
    let f = function(&gw, &name, &q, &signed).await?;
    let base = gw
        .events
        .delivery_config(&signed.who, "_", &f.name)
        .await?
        .map_or_else(DeliveryPut::default, |c| DeliveryPut::from_config(&c));
    let put = apply(&body, base)?;
    write(&gw, &signed, &f, put).await
}

/// `GET .../event-invoke-config`.
pub(crate) async fn get(
    State(gw): State<Gateway>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    signed: Signed,
) -> Result<Response, LambdaError> {
    let f = function(&gw, &name, &q, &signed).await?;
    let c = gw
        .events
        .delivery_config(&signed.who, "_", &f.name)
        .await?
        .ok_or_else(|| no_config(&f, &signed.region))?;
    Ok(axum::Json(shown(&c, &signed.region)).into_response())
}

/// `GET .../event-invoke-config/list`: the one config of `$LATEST`, if any.
pub(crate) async fn list(
    State(gw): State<Gateway>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    signed: Signed,
) -> Result<Response, LambdaError> {
    let f = function(&gw, &name, &q, &signed).await?;
    let configs: Vec<Value> = gw
        .events
        .delivery_config(&signed.who, "_", &f.name)
        .await?
        .iter()
        .map(|c| shown(c, &signed.region))
        .collect();
    Ok(axum::Json(json!({ "FunctionEventInvokeConfigs": configs })).into_response())
}

/// `DELETE .../event-invoke-config`: 204.
pub(crate) async fn delete(
    State(gw): State<Gateway>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    signed: Signed,
) -> Result<Response, LambdaError> {
    let f = function(&gw, &name, &q, &signed).await?;
    match gw
        .events
        .delete_delivery_config(&signed.who, "_", &f.name)
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(EventError::Core(ControllerError::NotFound)) => Err(no_config(&f, &signed.region)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn lambda_fields_map_to_a_delivery_config() {
        let put = apply(
            &body(json!({
                "MaximumRetryAttempts": 1,
                "MaximumEventAgeInSeconds": 120,
                "DestinationConfig": {
                    "OnSuccess": {"Destination": "arn:aws:lambda:us-east-1:000000000000:function:ok"},
                    "OnFailure": {"Destination": "trigger:failed"},
                },
            })),
            DeliveryPut::default(),
        )
        .unwrap();
        assert_eq!(put.maximum_retry_attempts, 1);
        assert_eq!(put.maximum_event_age_in_seconds, 120);
        assert_eq!(put.on_success.as_deref(), Some("action:ok"));
        assert_eq!(put.on_failure.as_deref(), Some("trigger:failed"));
        // A merge keeps what the body leaves out; an empty destination removes one.
        let merged = apply(
            &body(json!({"DestinationConfig": {"OnFailure": {}}})),
            put.clone(),
        )
        .unwrap();
        assert_eq!(merged.on_success.as_deref(), Some("action:ok"));
        assert_eq!(merged.on_failure, None);
        assert_eq!(merged.maximum_retry_attempts, 1);
    }

    #[test]
    fn lambdas_ranges_and_destinations_are_checked() {
        for bad in [
            json!({"MaximumRetryAttempts": 3}),
            json!({"MaximumEventAgeInSeconds": 59}),
            json!({"MaximumEventAgeInSeconds": 21_601}),
            json!({"DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:000000000000:q"}}}),
            json!({"DestinationConfig": {"OnFailure": {"Destination": "arn:aws:lambda:us-east-1:000000000000:function:f:2"}}}),
            json!({"Qualifier": "x"}),
        ] {
            let e = apply(&body(bad.clone()), DeliveryPut::default()).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
            assert_eq!(e.kind, "InvalidParameterValueException", "{bad}");
        }
    }

    #[test]
    fn a_config_is_shown_as_lambda_shows_it() {
        let c = DeliveryConfig {
            namespace: "ns".into(),
            action: "f".into(),
            maximum_retry_attempts: 2,
            maximum_event_age_in_seconds: 60,
            on_success: None,
            on_failure: Some("action:dlq".into()),
            updated: 1_500,
        };
        assert_eq!(
            shown(&c, "us-east-1"),
            json!({
                "FunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST",
                "MaximumRetryAttempts": 2,
                "MaximumEventAgeInSeconds": 60,
                "LastModified": 1.5,
                "DestinationConfig": {
                    "OnSuccess": {},
                    "OnFailure": {"Destination": "arn:aws:lambda:us-east-1:000000000000:function:dlq"},
                },
            })
        );
    }
}
