//! State machines: Create, Describe, Update, Delete, List, and DescribeStateMachineForExecution.
//! A state machine is a workflow; its definition is kept as the JSON it parses to (the text
//! Step Functions gives back is that JSON written again).

use gust_model::Workflow;
use gust_model::lambda::ACCOUNT;
use gust_workflow::WorkflowError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Ctx, SfnError, check_name, date, execution_names, input, machine_arn, machine_name,
    max_results, token_number,
};

/// The one role a state machine shows (Gust keeps none of its own).
fn role() -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/gust")
}

/// A definition as a request gives it: a JSON text; one that does not parse is
/// `InvalidDefinition`.
fn definition(text: &str) -> Result<Value, SfnError> {
    serde_json::from_str(text).map_err(|e| {
        SfnError::new(
            "InvalidDefinition",
            format!("Invalid State Machine Definition: '{e}'"),
        )
    })
}

/// A workflow's error at a create or an update: an invalid one is its definition's fault.
fn put_error(e: WorkflowError) -> SfnError {
    match e {
        WorkflowError::Invalid(m) => SfnError::new(
            "InvalidDefinition",
            format!("Invalid State Machine Definition: '{m}'"),
        ),
        e => e.into(),
    }
}

/// `type`: `STANDARD`, or `EXPRESS` (run as a standard one).
fn check_type(t: Option<&str>) -> Result<(), SfnError> {
    match t {
        None | Some("STANDARD") | Some("EXPRESS") => Ok(()),
        Some(other) => Err(SfnError::validation(format!(
            "1 validation error detected: Value '{other}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [STANDARD, EXPRESS]"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateInput {
    name: String,
    definition: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// CreateStateMachine: the state machine, or the same one again when it exists with this
/// very definition (Step Functions' idempotent create); another is
/// `StateMachineAlreadyExists`.
pub(super) async fn create(ctx: &Ctx<'_>, body: Value) -> Result<Value, SfnError> {
    let i: CreateInput = input(body)?;
    check_name(&i.name)?;
    check_type(i.kind.as_deref())?;
    let def = definition(&i.definition)?;
    let arn = machine_arn(ctx.region, &i.name);
    let w = match ctx
        .workflows
        .put(ctx.who, &i.name, def.clone(), false)
        .await
    {
        Ok(w) => w,
        Err(WorkflowError::WorkflowAlreadyExists(_)) => {
            let existing = ctx.workflows.get(ctx.who, &i.name).await?;
            if existing.definition != def {
                return Err(SfnError::new(
                    "StateMachineAlreadyExists",
                    format!("State Machine Already Exists: '{arn}'"),
                ));
            }
            existing
        }
        Err(e) => return Err(put_error(e)),
    };
    Ok(json!({ "stateMachineArn": arn, "creationDate": date(w.updated) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MachineInput {
    state_machine_arn: String,
}

/// The workflow a state machine ARN names; a missing one is `StateMachineDoesNotExist`.
async fn workflow(ctx: &Ctx<'_>, arn: &str) -> Result<Workflow, SfnError> {
    let name = machine_name(arn)?;
    match ctx.workflows.get(ctx.who, &name).await {
        Err(WorkflowError::WorkflowDoesNotExist(_)) => Err(SfnError::machine_not_found(arn)),
        other => Ok(other?),
    }
}

/// DescribeStateMachine's answer for `w`.
fn description(ctx: &Ctx<'_>, w: &Workflow) -> Value {
    json!({
        "stateMachineArn": machine_arn(ctx.region, &w.name),
        "name": w.name,
        "status": "ACTIVE",
        "definition": w.definition.to_string(),
        "roleArn": role(),
        "type": "STANDARD",
        "creationDate": date(w.updated),
        "loggingConfiguration": { "level": "OFF", "includeExecutionData": false },
    })
}

pub(super) async fn describe(ctx: &Ctx<'_>, body: Value) -> Result<Value, SfnError> {
    let i: MachineInput = input(body)?;
    let w = workflow(ctx, &i.state_machine_arn).await?;
    Ok(description(ctx, &w))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ForExecutionInput {
    execution_arn: String,
}

/// DescribeStateMachineForExecution: the state machine as the execution ran it (its
/// `ExecutionStarted` event keeps the definition), even if it was updated or deleted since.
pub(super) async fn describe_for_execution(ctx: &Ctx<'_>, body: Value) -> Result<Value, SfnError> {
    let i: ForExecutionInput = input(body)?;
    let (workflow_name, name) = execution_names(&i.execution_arn)?;
    let e = match ctx
        .workflows
        .execution_named(ctx.who, &workflow_name, &name)
        .await
    {
        Err(WorkflowError::ExecutionDoesNotExist(_)) => {
            return Err(SfnError::execution_not_found(&i.execution_arn));
        }
        other => other?,
    };
    let first = ctx.workflows.history(ctx.who, &e.id, 0, 1, false).await?;
    let Some(started) = first.first().map(|ev| &ev.details) else {
        return Err(SfnError::execution_not_found(&i.execution_arn));
    };
    let w = Workflow {
        namespace: e.namespace.clone(),
        name: e.workflow.clone(),
        version: started["version"].as_str().unwrap_or_default().to_string(),
        definition: started["definition"].clone(),
        updated: e.start,
    };
    let mut out = description(ctx, &w);
    out["updateDate"] = date(w.updated);
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateInput {
    state_machine_arn: String,
    #[serde(default)]
    definition: Option<String>,
}

/// UpdateStateMachine: a new definition (or none: nothing changes) of a state machine that
/// exists.
pub(super) async fn update(ctx: &Ctx<'_>, body: Value) -> Result<Value, SfnError> {
    let i: UpdateInput = input(body)?;
    let existing = workflow(ctx, &i.state_machine_arn).await?;
    let Some(text) = i.definition else {
        return Ok(json!({ "updateDate": date(existing.updated) }));
    };
    let def = definition(&text)?;
    let w = ctx
        .workflows
        .put(ctx.who, &existing.name, def, true)
        .await
        .map_err(put_error)?;
    Ok(json!({ "updateDate": date(w.updated) }))
}

/// DeleteStateMachine: `{}`, also for one that does not exist (as Step Functions answers).
pub(super) async fn delete(ctx: &Ctx<'_>, body: Value) -> Result<Value, SfnError> {
    let i: MachineInput = input(body)?;
    let name = match machine_name(&i.state_machine_arn) {
        Ok(name) => name,
        Err(e) if e.kind == "StateMachineDoesNotExist" => return Ok(json!({})),
        Err(e) => return Err(e),
    };
    match ctx.workflows.delete(ctx.who, &name).await {
        Ok(_) | Err(WorkflowError::WorkflowDoesNotExist(_)) => Ok(json!({})),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    #[serde(default)]
    max_results: Option<u64>,
    #[serde(default)]
    next_token: Option<String>,
}

/// ListStateMachines, by name; `nextToken` is where the next page starts.
pub(super) async fn list(ctx: &Ctx<'_>, body: Value) -> Result<Value, SfnError> {
    let i: ListInput = input(body)?;
    let limit = max_results(i.max_results)?;
    let skip = token_number(i.next_token.as_deref())?.unwrap_or(0);
    let mut page = ctx.workflows.list(ctx.who, skip, limit + 1).await?;
    let more = page.len() as u64 > limit;
    page.truncate(limit as usize);
    let machines: Vec<Value> = page
        .iter()
        .map(|w| {
            json!({
                "stateMachineArn": machine_arn(ctx.region, &w.name),
                "name": w.name,
                "type": "STANDARD",
                "creationDate": date(w.updated),
            })
        })
        .collect();
    let mut out = json!({ "stateMachines": machines });
    if more {
        out["nextToken"] = json!((skip + limit).to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_and_types_are_checked() {
        assert!(definition(r#"{"StartAt": "A"}"#).is_ok());
        assert_eq!(definition("{").unwrap_err().kind, "InvalidDefinition");
        for ok in [None, Some("STANDARD"), Some("EXPRESS")] {
            assert!(check_type(ok).is_ok());
        }
        assert_eq!(
            check_type(Some("FAST")).unwrap_err().kind,
            "ValidationException"
        );
        let e = put_error(WorkflowError::Invalid("State \"A\": bad".into()));
        assert_eq!(e.kind, "InvalidDefinition");
        assert!(e.message.contains("State \"A\": bad"));
        assert_eq!(
            put_error(WorkflowError::WorkflowDoesNotExist("x".into())).kind,
            "StateMachineDoesNotExist"
        );
    }
}
