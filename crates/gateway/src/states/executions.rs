//! Executions: Start, StartSync, Describe, List, Stop, and the task token results
//! (SendTaskSuccess, SendTaskFailure, SendTaskHeartbeat). An execution is named by its ARN,
//! `...:execution:<state machine>:<name>`; inputs and outputs travel as JSON texts.

use gust_model::{Execution, ExecutionStatus};
use gust_workflow::WorkflowError;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    Ctx, SYNC_WAIT, SfnError, check_name, date, execution_arn, execution_names, input, json_text,
    machine_arn, machine_name, max_results, text, token_number,
};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartInput {
    state_machine_arn: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<String>,
}

/// Starts the execution `body` asks for; a running one of that name is answered as it is
/// (Step Functions' idempotent start).
async fn start_execution(ctx: &Ctx<'_>, body: Value) -> Result<Execution, SfnError> {
    let i: StartInput = input(body)?;
    let workflow = machine_name(&i.state_machine_arn)?;
    if let Some(name) = &i.name {
        check_name(name)?;
    }
    let run_input = json_text(
        i.input.as_deref(),
        "InvalidExecutionInput",
        "State Machine Execution Input",
    )?;
    match ctx
        .workflows
        .start(ctx.who, &workflow, i.name.as_deref(), run_input)
        .await
    {
        Ok(started) => Ok(started.execution),
        Err(WorkflowError::WorkflowDoesNotExist(_)) => {
            Err(SfnError::machine_not_found(&i.state_machine_arn))
        }
        Err(e) => Err(e.into()),
    }
}

/// StartExecution: `{executionArn, startDate}`.
pub(super) async fn start(ctx: &Ctx<'_>, body: Value) -> Result<Value, SfnError> {
    let e = start_execution(ctx, body).await?;
    Ok(json!({
        "executionArn": execution_arn(ctx.region, &e.workflow, &e.name),
        "startDate": date(e.start),
    }))
}

/// StartSyncExecution: starts, waits up to [`SYNC_WAIT`], and answers the execution with its
/// output or error.
pub(super) async fn start_sync(ctx: &Ctx<'_>, body: Value) -> Result<Value, SfnError> {
    let e = start_execution(ctx, body).await?;
    let e = if e.status.is_running() {
        ctx.workflows.wait(ctx.who, &e.id, SYNC_WAIT).await?
    } else {
        e
    };
    Ok(Value::Object(described(ctx, &e)))
}

/// DescribeExecution's answer for `e`.
fn described(ctx: &Ctx<'_>, e: &Execution) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "executionArn".into(),
        json!(execution_arn(ctx.region, &e.workflow, &e.name)),
    );
    out.insert(
        "stateMachineArn".into(),
        json!(machine_arn(ctx.region, &e.workflow)),
    );
    out.insert("name".into(), json!(e.name));
    out.insert("status".into(), json!(e.status.as_str()));
    out.insert("startDate".into(), date(e.start));
    if let Some(stop) = e.stop {
        out.insert("stopDate".into(), date(stop));
    }
    out.insert("input".into(), text(&e.input));
    out.insert("inputDetails".into(), json!({ "included": true }));
    if let Some(output) = &e.output {
        out.insert("output".into(), text(output));
        out.insert("outputDetails".into(), json!({ "included": true }));
    }
    if let Some(error) = &e.error {
        out.insert("error".into(), json!(error));
    }
    if let Some(cause) = &e.cause {
        out.insert("cause".into(), json!(cause));
    }
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecutionInput {
    execution_arn: String,
}

/// The execution an ARN names; a missing one is `ExecutionDoesNotExist`.
pub(super) async fn execution(ctx: &Ctx<'_>, arn: &str) -> Result<Execution, SfnError> {
    let (workflow, name) = execution_names(arn)?;
    match ctx
        .workflows
        .execution_named(ctx.who, &workflow, &name)
        .await
    {
        Err(WorkflowError::ExecutionDoesNotExist(_)) => Err(SfnError::execution_not_found(arn)),
        other => Ok(other?),
    }
}

pub(super) async fn describe(ctx: &Ctx<'_>, body: Value) -> Result<Value, SfnError> {
    let i: ExecutionInput = input(body)?;
    let e = execution(ctx, &i.execution_arn).await?;
    Ok(Value::Object(described(ctx, &e)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    state_machine_arn: Option<String>,
    #[serde(default)]
    status_filter: Option<String>,
    #[serde(default)]
    max_results: Option<u64>,
    #[serde(default)]
    next_token: Option<String>,
}

/// ListExecutions of one state machine, newest first, optionally of one status.
pub(super) async fn list(ctx: &Ctx<'_>, body: Value) -> Result<Value, SfnError> {
    let i: ListInput = input(body)?;
    let Some(arn) = i.state_machine_arn else {
        return Err(SfnError::validation(
            "Gust lists the executions of a state machine: give stateMachineArn.",
        ));
    };
    let workflow = machine_name(&arn)?;
    let status = match i.status_filter.as_deref() {
        None => None,
        Some(s) => Some(ExecutionStatus::parse(s).ok_or_else(|| {
            SfnError::validation(format!(
                "1 validation error detected: Value '{s}' at 'statusFilter' failed to satisfy constraint: Member must satisfy enum value set: [RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED]"
            ))
        })?),
    };
    let limit = max_results(i.max_results)?;
    let skip = token_number(i.next_token.as_deref())?.unwrap_or(0);
    match ctx.workflows.get(ctx.who, &workflow).await {
        Ok(_) => {}
        Err(WorkflowError::WorkflowDoesNotExist(_)) => {
            return Err(SfnError::machine_not_found(&arn));
        }
        Err(e) => return Err(e.into()),
    }
    let mut page = ctx
        .workflows
        .executions(ctx.who, Some(&workflow), status, skip, limit + 1)
        .await?;
    let more = page.len() as u64 > limit;
    page.truncate(limit as usize);
    let executions: Vec<Value> = page
        .iter()
        .map(|e| {
            let mut item = json!({
                "executionArn": execution_arn(ctx.region, &e.workflow, &e.name),
                "stateMachineArn": machine_arn(ctx.region, &e.workflow),
                "name": e.name,
                "status": e.status.as_str(),
                "startDate": date(e.start),
            });
            if let Some(stop) = e.stop {
                item["stopDate"] = date(stop);
            }
            item
        })
        .collect();
    let mut out = json!({ "executions": executions });
    if more {
        out["nextToken"] = json!((skip + limit).to_string());
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StopInput {
    execution_arn: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    cause: Option<String>,
}

/// StopExecution: `{stopDate}`.
pub(super) async fn stop(ctx: &Ctx<'_>, body: Value) -> Result<Value, SfnError> {
    let i: StopInput = input(body)?;
    let e = execution(ctx, &i.execution_arn).await?;
    let e = ctx.workflows.stop(ctx.who, &e.id, i.error, i.cause).await?;
    let stopped = e.stop.unwrap_or_else(gust_model::time::now_ms);
    Ok(json!({ "stopDate": date(stopped) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskSuccessInput {
    task_token: String,
    output: String,
}

pub(super) async fn send_task_success(ctx: &Ctx<'_>, body: Value) -> Result<Value, SfnError> {
    let i: TaskSuccessInput = input(body)?;
    let output = json_text(Some(&i.output), "InvalidOutput", "Output")?;
    ctx.workflows
        .send_task_success(ctx.who, &i.task_token, output)
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskFailureInput {
    task_token: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    cause: Option<String>,
}

pub(super) async fn send_task_failure(ctx: &Ctx<'_>, body: Value) -> Result<Value, SfnError> {
    let i: TaskFailureInput = input(body)?;
    ctx.workflows
        .send_task_failure(ctx.who, &i.task_token, i.error, i.cause)
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskHeartbeatInput {
    task_token: String,
}

pub(super) async fn send_task_heartbeat(ctx: &Ctx<'_>, body: Value) -> Result<Value, SfnError> {
    let i: TaskHeartbeatInput = input(body)?;
    ctx.workflows
        .send_task_heartbeat(ctx.who, &i.task_token)
        .await?;
    Ok(json!({}))
}
