//! CreateFunction, GetFunction, GetFunctionConfiguration, ListFunctions, UpdateFunctionCode,
//! UpdateFunctionConfiguration and DeleteFunction, on the actions of the caller's namespace.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gust_controller::{ActionPut, ControllerError, ExecPut, Identity};
use gust_model::lambda::{self as model};
use gust_model::limits::ActionLimitsPatch;
use gust_model::{Action, ActionLimits, KeyValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::LambdaError;
use super::sigv4::Signed;
use super::{FunctionRef, configuration, is_function, new_revision, settings, with_settings};
use crate::{Gateway, ServedOverTls};

/// The query parameters of `raw`.
pub(crate) fn query(raw: &Option<String>) -> BTreeMap<String, String> {
    raw.as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// A JSON body of type `T`; Lambda's 400 when it is not one.
fn read<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, LambdaError> {
    serde_json::from_slice(body).map_err(|e| {
        LambdaError::invalid_parameter(format!(
            "The request body is not what this operation takes: {e}"
        ))
    })
}

/// The Lambda function `f` of the caller's namespace: 404 when there is no such action or
/// it is not a Lambda function.
pub(super) async fn function(
    gw: &Gateway,
    who: &Identity,
    f: &FunctionRef,
    region: &str,
    code: bool,
) -> Result<Action, LambdaError> {
    let not_found = || LambdaError::function_not_found(&model::function_arn(region, &f.name));
    match gw.controller.get_action(who, "_", &f.name, code).await {
        Ok(a) if is_function(&a) => Ok(a),
        Ok(_) | Err(ControllerError::NotFound) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CodeIn {
    zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    s3_bucket: Option<String>,
    image_uri: Option<String>,
}

impl CodeIn {
    /// The zip, base64 as sent; Lambda's 400 for code Gust cannot take.
    fn zip(self) -> Result<String, LambdaError> {
        if self.image_uri.is_some() {
            return Err(LambdaError::invalid_parameter(
                "Gust runs functions packaged as zip archives, not container images (ImageUri).",
            ));
        }
        if self.s3_bucket.is_some() {
            return Err(LambdaError::invalid_parameter(
                "Gust takes a function's code in ZipFile, not from S3 (S3Bucket, S3Key).",
            ));
        }
        self.zip_file
            .filter(|z| !z.is_empty())
            .ok_or_else(|| LambdaError::invalid_parameter("Code.ZipFile is required."))
    }
}

/// Decoded size of base64 `b64`, without decoding it (the controller decodes and checks it).
fn decoded_len(b64: &str) -> u64 {
    let t = b64.trim();
    let padding = t.bytes().rev().take_while(|b| *b == b'=').count() as u64;
    (t.len() as u64 / 4 * 3).saturating_sub(padding)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EnvironmentIn {
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

/// `Environment.Variables` as `init` parameters, checked as Lambda checks them.
fn environment(env: EnvironmentIn) -> Result<Vec<KeyValue>, LambdaError> {
    let reserved: Vec<&str> = env
        .variables
        .keys()
        .map(String::as_str)
        .filter(|k| gust_model::lambda::RESERVED_ENV.contains(k))
        .collect();
    if !reserved.is_empty() {
        return Err(LambdaError::invalid_parameter(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {}",
            reserved.join(", ")
        )));
    }
    env.variables
        .into_iter()
        .map(|(k, v)| {
            let mut bytes = k.bytes();
            let ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
                && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(LambdaError::invalid_parameter(format!(
                    "The environment variable name '{k}' is not valid: a letter, then letters, digits and _."
                )));
            }
            Ok(KeyValue {
                init: true,
                ..KeyValue::new(k, Value::String(v))
            })
        })
        .collect()
}

/// `Timeout` (seconds) and `MemorySize` (MB) as limits, within what this server runs.
fn limits(timeout: Option<u64>, memory: Option<u64>) -> Result<ActionLimitsPatch, LambdaError> {
    let (t_min, t_max, _) = ActionLimits::TIMEOUT;
    let (m_min, m_max, _) = ActionLimits::MEMORY;
    let t_range = (t_min.div_ceil(1000), t_max / 1000);
    if let Some(t) = timeout
        && !(t_range.0..=t_range.1).contains(&t)
    {
        return Err(LambdaError::invalid_parameter(format!(
            "Timeout must be between {} and {} seconds on this server, got {t}.",
            t_range.0, t_range.1
        )));
    }
    if let Some(m) = memory
        && !(m_min..=m_max).contains(&m)
    {
        return Err(LambdaError::invalid_parameter(format!(
            "MemorySize must be between {m_min} and {m_max} MB on this server, got {m}."
        )));
    }
    Ok(ActionLimitsPatch {
        timeout: timeout.map(|t| t * 1000),
        memory,
        ..ActionLimitsPatch::default()
    })
}

/// A runtime Gust runs (`python3.11`): its kind.
fn kind_of(runtime: &str) -> Result<String, LambdaError> {
    if model::runtime(runtime).is_none() {
        return Err(LambdaError::invalid_parameter(format!(
            "Value {runtime} at 'runtime' failed to satisfy constraint: Gust runs python3.x, nodejsNN.x, provided, provided.al2 and provided.al2023."
        )));
    }
    Ok(format!("{}{runtime}", model::KIND_PREFIX))
}

fn check_architectures(a: &Option<Vec<String>>) -> Result<(), LambdaError> {
    match a.as_deref() {
        None | Some([]) => Ok(()),
        Some([one]) if one == super::architecture() => Ok(()),
        Some(other) => Err(LambdaError::invalid_parameter(format!(
            "This server runs functions on {} only, not {}.",
            super::architecture(),
            other.join(", ")
        ))),
    }
}

fn check_layers(layers: &Option<Vec<String>>) -> Result<(), LambdaError> {
    match layers {
        Some(l) if !l.is_empty() => Err(LambdaError::invalid_parameter(
            "Gust runs no layers: put what a layer holds in the function's zip.",
        )),
        _ => Ok(()),
    }
}

/// The body of CreateFunction.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Create {
    function_name: String,
    runtime: Option<String>,
    role: Option<String>,
    handler: Option<String>,
    #[serde(default)]
    code: CodeIn,
    description: Option<String>,
    timeout: Option<u64>,
    memory_size: Option<u64>,
    environment: Option<EnvironmentIn>,
    package_type: Option<String>,
    architectures: Option<Vec<String>>,
    layers: Option<Vec<String>>,
    tags: Option<Map<String, Value>>,
}

/// `POST /2015-03-31/functions`: 201 with the new function's configuration.
pub(crate) async fn create(
    State(gw): State<Gateway>,
    signed: Signed,
) -> Result<Response, LambdaError> {
    let Signed { who, region, body } = signed;
    let c: Create = read(&body)?;
    let f = FunctionRef::parse(&c.function_name)?;
    if f.qualifier.is_some() {
        return Err(LambdaError::invalid_parameter(
            "A new function's name carries no qualifier.",
        ));
    }
    if c.package_type.as_deref().is_some_and(|p| p != "Zip") {
        return Err(LambdaError::invalid_parameter(
            "Gust runs functions of PackageType Zip only.",
        ));
    }
    check_architectures(&c.architectures)?;
    check_layers(&c.layers)?;
    let runtime = c
        .runtime
        .ok_or_else(|| LambdaError::invalid_parameter("Runtime is required for a zip function."))?;
    let kind = kind_of(&runtime)?;
    let zip = c.code.zip()?;
    let params = environment(c.environment.unwrap_or_default())?;
    // Lambda's defaults: 3 seconds, 128 MB.
    let limits = limits(
        Some(c.timeout.unwrap_or(3)),
        Some(c.memory_size.unwrap_or(128)),
    )?;
    let mut s = Map::new();
    s.insert(
        "role".into(),
        json!(c.role.unwrap_or_else(super::default_role)),
    );
    s.insert(
        "description".into(),
        json!(c.description.unwrap_or_default()),
    );
    s.insert("revisionId".into(), json!(new_revision()));
    s.insert("codeSize".into(), json!(decoded_len(&zip)));
    if let Some(tags) = c.tags {
        s.insert("tags".into(), Value::Object(tags));
    }
    let put = ActionPut {
        exec: Some(ExecPut {
            kind,
            code: Some(zip),
            binary: Some(true),
            main: c.handler,
            components: None,
        }),
        parameters: Some(params),
        annotations: Some(vec![KeyValue::new(model::ANNOTATION, Value::Object(s))]),
        limits: Some(limits),
        ..ActionPut::default()
    };
    let action = match gw.controller.put_action(&who, &f.name, put, false).await {
        Ok(a) => a,
        Err(ControllerError::Conflict) => {
            return Err(LambdaError::conflict(format!(
                "Function already exist: {}",
                f.name
            )));
        }
        Err(e) => return Err(e.into()),
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(configuration(&action, &region)),
    )
        .into_response())
}

/// `GET /2015-03-31/functions/{name}`: `{Configuration, Code, Tags}`.
pub(crate) async fn get(
    State(gw): State<Gateway>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    tls: Option<axum::Extension<ServedOverTls>>,
    signed: Signed,
) -> Result<Response, LambdaError> {
    let q = query(&q);
    let f = FunctionRef::latest(
        &name,
        q.get("Qualifier").map(String::as_str),
        &signed.region,
    )?;
    let a = function(&gw, &signed.who, &f, &signed.region, false).await?;
    let tls = tls.is_some_and(|axum::Extension(ServedOverTls(t))| t);
    // Not a presigned S3 URL: the action's code through Gust's own API, for a caller with
    // the namespace's key.
    let location = format!(
        "{}/api/v1/namespaces/{}/actions/{}?code=true",
        super::base_url(&headers, tls),
        a.namespace,
        a.name
    );
    let mut out = json!({
        "Configuration": configuration(&a, &signed.region),
        "Code": { "RepositoryType": "S3", "Location": location },
    });
    if let Some(tags) = settings(&a).get("tags") {
        out["Tags"] = tags.clone();
    }
    Ok(axum::Json(out).into_response())
}

/// `GET /2015-03-31/functions/{name}/configuration`.
pub(crate) async fn get_configuration(
    State(gw): State<Gateway>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    signed: Signed,
) -> Result<Response, LambdaError> {
    let q = query(&q);
    let f = FunctionRef::latest(
        &name,
        q.get("Qualifier").map(String::as_str),
        &signed.region,
    )?;
    let a = function(&gw, &signed.who, &f, &signed.region, false).await?;
    Ok(axum::Json(configuration(&a, &signed.region)).into_response())
}

/// Most functions one ListFunctions page holds.
const MAX_ITEMS: usize = 10_000;
/// Actions read from the store at a time while listing.
const SCAN_PAGE: u64 = 200;

/// `GET /2015-03-31/functions`: the namespace's Lambda functions, by name. `Marker` is where
/// the previous page stopped among the namespace's actions.
pub(crate) async fn list(
    State(gw): State<Gateway>,
    RawQuery(q): RawQuery,
    signed: Signed,
) -> Result<Response, LambdaError> {
    let q = query(&q);
    let max = match q.get("MaxItems").map(|m| m.parse::<usize>()) {
        None => 50,
        Some(Ok(n)) if (1..=MAX_ITEMS).contains(&n) => n,
        Some(_) => {
            return Err(LambdaError::invalid_parameter(format!(
                "MaxItems must be a number from 1 to {MAX_ITEMS}."
            )));
        }
    };
    let mut offset = match q.get("Marker").map(|m| m.parse::<u64>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return Err(LambdaError::invalid_parameter(
                "Marker is not one this server handed out.",
            ));
        }
    };
    let mut functions = Vec::new();
    let mut next = None;
    'scan: loop {
        let page = gw
            .controller
            .list_actions(&signed.who, "_", None, offset, SCAN_PAGE)
            .await?;
        let full = page.len() as u64 == SCAN_PAGE;
        for a in &page {
            if is_function(a) {
                if functions.len() == max {
                    next = Some(offset);
                    break 'scan;
                }
                functions.push(configuration(a, &signed.region));
            }
            offset += 1;
        }
        if !full {
            break;
        }
    }
    let mut out = json!({ "Functions": functions });
    if let Some(n) = next {
        out["NextMarker"] = json!(n.to_string());
    }
    Ok(axum::Json(out).into_response())
}

/// Refuses a write whose `RevisionId` is not the function's (another write came between).
fn check_revision(a: &Action, given: &Option<String>) -> Result<(), LambdaError> {
    let Some(given) = given else { return Ok(()) };
    let current = settings(a).get("revisionId").cloned();
    if current.as_ref().and_then(Value::as_str) != Some(given) {
        return Err(LambdaError::precondition_failed(
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
        ));
    }
    Ok(())
}

/// Writes `put` over function `a`: answers its new configuration.
async fn overwrite(
    gw: &Gateway,
    who: &Identity,
    a: &Action,
    put: ActionPut,
    region: &str,
) -> Result<Response, LambdaError> {
    let action = gw.controller.put_action(who, &a.name, put, true).await?;
    Ok(axum::Json(configuration(&action, region)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateCode {
    #[serde(flatten)]
    code: CodeIn,
    #[serde(default)]
    dry_run: bool,
    revision_id: Option<String>,
    architectures: Option<Vec<String>>,
}

/// `PUT /2015-03-31/functions/{name}/code`.
pub(crate) async fn update_code(
    State(gw): State<Gateway>,
    Path(name): Path<String>,
    signed: Signed,
) -> Result<Response, LambdaError> {
    let Signed { who, region, body } = signed;
    let u: UpdateCode = read(&body)?;
    let f = FunctionRef::latest(&name, None, &region)?;
    check_architectures(&u.architectures)?;
    let zip = u.code.zip()?;
    let a = function(&gw, &who, &f, &region, false).await?;
    check_revision(&a, &u.revision_id)?;
    if u.dry_run {
        return Ok(axum::Json(configuration(&a, &region)).into_response());
    }
    let mut s = settings(&a);
    s.insert("revisionId".into(), json!(new_revision()));
    s.insert("codeSize".into(), json!(decoded_len(&zip)));
    let put = ActionPut {
        exec: Some(ExecPut {
            kind: a.exec.kind.clone(),
            code: Some(zip),
            binary: Some(true),
            main: a.exec.main.clone(),
            components: None,
        }),
        annotations: Some(with_settings(&a, s)),
        ..ActionPut::default()
    };
    overwrite(&gw, &who, &a, put, &region).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateConfiguration {
    role: Option<String>,
    handler: Option<String>,
    description: Option<String>,
    timeout: Option<u64>,
    memory_size: Option<u64>,
    environment: Option<EnvironmentIn>,
    runtime: Option<String>,
    revision_id: Option<String>,
    layers: Option<Vec<String>>,
}

/// `PUT /2015-03-31/functions/{name}/configuration`.
pub(crate) async fn update_configuration(
    State(gw): State<Gateway>,
    Path(name): Path<String>,
    signed: Signed,
) -> Result<Response, LambdaError> {
    let Signed { who, region, body } = signed;
    let u: UpdateConfiguration = read(&body)?;
    let f = FunctionRef::latest(&name, None, &region)?;
    check_layers(&u.layers)?;
    let limits = limits(u.timeout, u.memory_size)?;
    let kind = u.runtime.as_deref().map(kind_of).transpose()?;
    let env = u.environment.map(environment).transpose()?;
    let a = function(&gw, &who, &f, &region, false).await?;
    check_revision(&a, &u.revision_id)?;
    // A new handler or runtime is a new exec, which goes with its code.
    let exec = if u.handler.is_some() || kind.is_some() {
        let with_code = function(&gw, &who, &f, &region, true).await?;
        Some(ExecPut {
            kind: kind.unwrap_or_else(|| a.exec.kind.clone()),
            code: with_code.exec.code,
            binary: Some(true),
            main: u.handler.or_else(|| a.exec.main.clone()),
            components: None,
        })
    } else {
        None
    };
    // The variables replace the old ones; other parameters stay (a secret one without its
    // value keeps what is stored).
    let parameters = env.map(|env| {
        let mut p: Vec<KeyValue> = a.parameters.iter().filter(|p| !p.init).cloned().collect();
        p.extend(env);
        p
    });
    let mut s = settings(&a);
    s.insert("revisionId".into(), json!(new_revision()));
    if let Some(r) = u.role {
        s.insert("role".into(), json!(r));
    }
    if let Some(d) = u.description {
        s.insert("description".into(), json!(d));
    }
    let put = ActionPut {
        exec,
        parameters,
        annotations: Some(with_settings(&a, s)),
        limits: Some(limits),
        ..ActionPut::default()
    };
    overwrite(&gw, &who, &a, put, &region).await
}

/// `DELETE /2015-03-31/functions/{name}`: 204.
pub(crate) async fn delete(
    State(gw): State<Gateway>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    signed: Signed,
) -> Result<Response, LambdaError> {
    let q = query(&q);
    let f = FunctionRef::latest(
        &name,
        q.get("Qualifier").map(String::as_str),
        &signed.region,
    )?;
    let a = function(&gw, &signed.who, &f, &signed.region, false).await?;
    match gw
        .controller
        .delete_action(&signed.who.namespace, &a.name)
        .await
    {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(ControllerError::NotFound) => Err(LambdaError::function_not_found(
            &model::function_arn(&signed.region, &f.name),
        )),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_are_init_parameters_without_reserved_names() {
        let env = |pairs: &[(&str, &str)]| EnvironmentIn {
            variables: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let p = environment(env(&[("GREETING", "hi"), ("b_2", "x")])).unwrap();
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|kv| kv.init && !kv.secret));
        assert_eq!(p[0].value, json!("hi"));
        let e = environment(env(&[("AWS_REGION", "x"), ("OK", "y")])).unwrap_err();
        assert!(e.message.ends_with("AWS_REGION"), "{}", e.message);
        assert!(environment(env(&[("1A", "x")])).is_err());
        assert!(environment(env(&[("A-B", "x")])).is_err());
    }

    #[test]
    fn limits_are_checked_in_lambda_units() {
        let l = limits(Some(3), Some(128)).unwrap();
        assert_eq!((l.timeout, l.memory), (Some(3000), Some(128)));
        assert!(limits(Some(0), None).is_err());
        assert!(limits(Some(301), None).is_err());
        assert!(limits(None, Some(1024)).is_err());
        assert!(limits(None, None).is_ok());
    }

    #[test]
    fn runtimes_become_kinds() {
        assert_eq!(kind_of("python3.11").unwrap(), "lambda:python3.11");
        assert_eq!(
            kind_of("provided.al2023").unwrap(),
            "lambda:provided.al2023"
        );
        assert!(kind_of("java21").is_err());
        assert_eq!(decoded_len("UEsDBA=="), 4);
        assert_eq!(decoded_len("UEsDBAo="), 5);
    }
}
