//! Function URL configurations (`/2021-10-31/functions/{name}/url`): Create (201), Get,
//! Update and Delete (204). A function URL is the function served as a web action
//! (`web-export`), at `<scheme>://<host>/api/v1/web/<namespace>/default/<function>/`; its
//! configuration is `url` in the `lambda` annotation.
//!
//! Only `AuthType: NONE` is served (anyone may call the URL, as on AWS); `AWS_IAM` is refused
//! with a 400 saying so rather than accepted and left unchecked. Only `InvokeMode: BUFFERED`.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gust_controller::ActionPut;
use gust_model::time::now_ms;
use gust_model::{Action, KeyValue, annotations, lambda as model};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::LambdaError;
use super::functions::query;
use super::sigv4::Signed;
use super::{FunctionRef, base_url, lambda_time, settings, with_settings};
use crate::{Gateway, ServedOverTls};

/// The body of Create and Update.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UrlConfigIn {
    auth_type: Option<String>,
    cors: Option<Value>,
    invoke_mode: Option<String>,
}

impl UrlConfigIn {
    /// Checks what Gust serves: `AuthType` NONE, `InvokeMode` BUFFERED.
    fn check(&self) -> Result<(), LambdaError> {
        match self.auth_type.as_deref() {
            None | Some("NONE") => {}
            Some("AWS_IAM") => {
                return Err(LambdaError::invalid_parameter(
                    "Gust serves function URLs with AuthType NONE only: a URL with AuthType AWS_IAM would need SigV4 on every web request, which Gust does not check there.",
                ));
            }
            Some(other) => {
                return Err(LambdaError::invalid_parameter(format!(
                    "AuthType must be NONE or AWS_IAM, not '{other}'."
                )));
            }
        }
        // A CORS configuration would be promised and not kept: the function's web action
        // answers with OpenWhisk's CORS headers (or the function's own).
        if self
            .cors
            .as_ref()
            .is_some_and(|c| c.as_object().is_some_and(|o| !o.is_empty()))
        {
            return Err(LambdaError::invalid_parameter(
                "Gust does not apply a function URL's Cors configuration: its web action answers with OpenWhisk's CORS headers, or the function's own. Leave Cors out.",
            ));
        }
        match self.invoke_mode.as_deref() {
            None | Some("BUFFERED") => Ok(()),
            Some(other) => Err(LambdaError::invalid_parameter(format!(
                "Gust serves function URLs with InvokeMode BUFFERED only, not '{other}'."
            ))),
        }
    }
}

/// The Lambda function a URL request names, with the qualifier checked.
async fn function(
    gw: &Gateway,
    name: &str,
    q: &Option<String>,
    signed: &Signed,
) -> Result<Action, LambdaError> {
    let q = query(q);
    let f = FunctionRef::latest(name, q.get("Qualifier").map(String::as_str), &signed.region)?;
    super::functions::function(gw, &signed.who, &f, &signed.region, false).await
}

/// The stored URL configuration of `a`, if it has one.
fn stored(a: &Action) -> Option<Map<String, Value>> {
    settings(a).get("url").and_then(Value::as_object).cloned()
}

fn no_url() -> LambdaError {
    LambdaError::not_found("The resource you requested does not exist.")
}

/// The configuration as Lambda answers it.
fn shown(a: &Action, url: &Map<String, Value>, base: &str, region: &str) -> Value {
    let mut out = json!({
        "FunctionUrl": format!("{base}/api/v1/web/{}/default/{}/", a.namespace, a.name),
        "FunctionArn": model::function_arn(region, &a.name),
        "AuthType": url.get("authType").cloned().unwrap_or(json!("NONE")),
        "CreationTime": url.get("creationTime").cloned().unwrap_or(Value::Null),
        "LastModifiedTime": url.get("lastModifiedTime").cloned().unwrap_or(Value::Null),
        "InvokeMode": url.get("invokeMode").cloned().unwrap_or(json!("BUFFERED")),
    });
    if let Some(cors) = url.get("cors").filter(|c| !c.is_null()) {
        out["Cors"] = cors.clone();
    }
    out
}

/// Writes `a` with `url` as its URL configuration (`None`: without one) and `web-export`
/// set to match.
async fn write(
    gw: &Gateway,
    signed: &Signed,
    a: &Action,
    url: Option<Map<String, Value>>,
) -> Result<Action, LambdaError> {
    let mut s = settings(a);
    s.insert("revisionId".into(), json!(super::new_revision()));
    let exported = url.is_some();
    match url {
        Some(u) => s.insert("url".into(), Value::Object(u)),
        None => s.remove("url"),
    };
    let mut annotations = with_settings(a, s);
    annotations.retain(|kv| kv.key != annotations::WEB_EXPORT);
    if exported {
        annotations.push(KeyValue::new(annotations::WEB_EXPORT, json!(true)));
    }
    let put = ActionPut {
        annotations: Some(annotations),
        ..ActionPut::default()
    };
    Ok(gw
        .controller
        .put_action(&signed.who, &a.name, put, true)
        .await?)
}

fn tls_of(tls: Option<axum::Extension<ServedOverTls>>) -> bool {
    tls.is_some_and(|axum::Extension(ServedOverTls(t))| t)
}

/// `POST /2021-10-31/functions/{name}/url`: 201.
pub(crate) async fn create(
    State(gw): State<Gateway>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    tls: Option<axum::Extension<ServedOverTls>>,
    signed: Signed,
) -> Result<Response, LambdaError> {
    let c: UrlConfigIn = serde_json::from_slice(&signed.body).map_err(|e| {
        LambdaError::invalid_parameter(format!(
            "The request body is not a function URL configuration: {e}"
        ))
    })?;
    if c.auth_type.is_none() {
        return Err(LambdaError::invalid_parameter("AuthType is required."));
    }
    c.check()?;
    let a = function(&gw, &name, &q, &signed).await?;
    if stored(&a).is_some() {
        return Err(LambdaError::conflict(format!(
            "Failed to create function url config for [functionArn = {}]. Error message:  FunctionUrlConfig exists for this Lambda function",
            model::function_arn(&signed.region, &a.name)
        )));
    }
    let now = lambda_time(now_ms());
    let mut url = Map::new();
    url.insert("authType".into(), json!("NONE"));
    url.insert("cors".into(), c.cors.unwrap_or(Value::Null));
    url.insert("invokeMode".into(), json!("BUFFERED"));
    url.insert("creationTime".into(), json!(now));
    url.insert("lastModifiedTime".into(), json!(now));
    let a = write(&gw, &signed, &a, Some(url.clone())).await?;
    let base = base_url(&headers, tls_of(tls));
    let mut out = shown(&a, &url, &base, &signed.region);
    if let Some(o) = out.as_object_mut() {
        o.remove("LastModifiedTime");
    }
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

/// `GET /2021-10-31/functions/{name}/url`.
pub(crate) async fn get(
    State(gw): State<Gateway>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    tls: Option<axum::Extension<ServedOverTls>>,
    signed: Signed,
) -> Result<Response, LambdaError> {
    let a = function(&gw, &name, &q, &signed).await?;
    let url = stored(&a).ok_or_else(no_url)?;
    let base = base_url(&headers, tls_of(tls));
    Ok(axum::Json(shown(&a, &url, &base, &signed.region)).into_response())
}

/// `PUT /2021-10-31/functions/{name}/url`.
pub(crate) async fn update(
    State(gw): State<Gateway>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    tls: Option<axum::Extension<ServedOverTls>>,
    signed: Signed,
) -> Result<Response, LambdaError> {
    let u: UrlConfigIn = serde_json::from_slice(&signed.body).map_err(|e| {
        LambdaError::invalid_parameter(format!(
            "The request body is not a function URL configuration: {e}"
        ))
    })?;
    u.check()?;
    let a = function(&gw, &name, &q, &signed).await?;
    let mut url = stored(&a).ok_or_else(no_url)?;
    if let Some(cors) = u.cors {
        url.insert("cors".into(), cors);
    }
    url.insert("lastModifiedTime".into(), json!(lambda_time(now_ms())));
    let a = write(&gw, &signed, &a, Some(url.clone())).await?;
    let base = base_url(&headers, tls_of(tls));
    Ok(axum::Json(shown(&a, &url, &base, &signed.region)).into_response())
}

/// `DELETE /2021-10-31/functions/{name}/url`: 204; the function is no longer web-exported.
pub(crate) async fn delete(
    State(gw): State<Gateway>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    signed: Signed,
) -> Result<Response, LambdaError> {
    let a = function(&gw, &name, &q, &signed).await?;
    stored(&a).ok_or_else(no_url)?;
    write(&gw, &signed, &a, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_gust_serves_is_accepted() {
        let c = |auth: Option<&str>, mode: Option<&str>| UrlConfigIn {
            auth_type: auth.map(str::to_string),
            cors: None,
            invoke_mode: mode.map(str::to_string),
        };
        assert!(c(Some("NONE"), None).check().is_ok());
        assert!(c(Some("NONE"), Some("BUFFERED")).check().is_ok());
        let iam = c(Some("AWS_IAM"), None).check().unwrap_err();
        assert_eq!(iam.kind, "InvalidParameterValueException");
        assert!(iam.message.contains("AuthType NONE only"));
        assert!(c(Some("OPEN"), None).check().is_err());
        assert!(c(Some("NONE"), Some("RESPONSE_STREAM")).check().is_err());
    }
}
