//! What a definition's Task states may run, for the check that a scoped token writing a
//! workflow gains nothing through it (decision 0023): each action it names, each workflow it
//! starts, or any of them when a task picks its target from its input.

use serde_json::Value;

use crate::engine::{Resource, parse_resource};

/// One thing a Task state may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The action of this name (`a`, `pkg/a` or `/ns/pkg/a`).
    Action(String),
    /// Any action: `lambda:invoke` with `FunctionName.$`.
    AnyAction,
    /// An execution of this workflow.
    Workflow(String),
    /// Any workflow: `startExecution` with `StateMachineArn.$`.
    AnyWorkflow,
}

/// Every target of every Task state of `definition`, branches and item processors
/// included. A resource the engine would refuse names nothing.
pub fn targets(definition: &Value) -> Vec<Target> {
    let mut out = Vec::new();
    walk(definition, &mut out);
    out
}

fn walk(machine: &Value, out: &mut Vec<Target>) {
    let Some(states) = machine.get("States").and_then(Value::as_object) else {
        return;
    };
    for state in states.values() {
        match state.get("Type").and_then(Value::as_str) {
            Some("Task") => task(state, out),
            Some("Parallel") => {
                for branch in state
                    .get("Branches")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    walk(branch, out);
                }
            }
            Some("Map") => {
                for key in ["ItemProcessor", "Iterator"] {
                    if let Some(p) = state.get(key) {
                        walk(p, out);
                    }
                }
            }
            _ => {}
        }
    }
}

fn task(state: &Value, out: &mut Vec<Target>) {
    let Some(resource) = state.get("Resource").and_then(Value::as_str) else {
        return;
    };
    let Ok((resource, _)) = parse_resource(resource) else {
        return;
    };
    let params = state.get("Parameters");
    let fixed = |key: &str| params.and_then(|p| p.get(key)).and_then(Value::as_str);
    let dynamic = |key: &str| params.is_some_and(|p| p.get(format!("{key}.$")).is_some());
    match resource {
        Resource::Action { name, .. } if !name.is_empty() => out.push(Target::Action(name)),
        Resource::Action { .. } => match fixed("FunctionName") {
            Some(f) if !dynamic("FunctionName") => {
                let name = f
                    .strip_prefix("arn:aws:lambda:")
                    .and_then(|r| r.split(':').nth(3))
                    .unwrap_or(f);
                out.push(Target::Action(name.to_string()));
            }
            _ => out.push(Target::AnyAction),
        },
        Resource::Workflow { name } if !name.is_empty() => out.push(Target::Workflow(name)),
        Resource::Workflow { .. } => match fixed("StateMachineArn") {
            Some(arn) if !dynamic("StateMachineArn") => {
                out.push(Target::Workflow(
                    arn.rsplit(':').next().unwrap_or(arn).to_string(),
                ));
            }
            _ => out.push(Target::AnyWorkflow),
        },
        Resource::Event { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_task_of_every_branch_and_processor_is_a_target() {
        let def = json!({"StartAt": "A", "States": {
            "A": {"Type": "Task", "Resource": "pkg/a.waitForTaskToken", "Next": "P"},
            "P": {"Type": "Parallel", "Next": "M", "Branches": [
                {"StartAt": "L", "States": {"L": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:000000000000:function:f"}, "End": true}}},
                {"StartAt": "D", "States": {"D": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName.$": "$.fn"}, "End": true}}}]},
            "M": {"Type": "Map", "End": true, "ItemProcessor": {"StartAt": "W", "States": {
                "W": {"Type": "Task", "Resource": "workflow:child", "Next": "S"},
                "S": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
                      "Parameters": {"StateMachineArn.$": "$.m"}, "Next": "E"},
                "E": {"Type": "Task", "Resource": "event:go", "End": true}}}}
        }});
        let mut t = targets(&def);
        t.sort_by_key(|x| format!("{x:?}"));
        assert_eq!(
            t,
            [
                Target::Action("f".into()),
                Target::Action("pkg/a".into()),
                Target::AnyAction,
                Target::AnyWorkflow,
                Target::Workflow("child".into()),
            ]
        );
    }
}
