//! Whole definitions through [`parse`]: every state type, every refusal (naming its
//! state), and what parsed states compute.

use super::*;
use serde_json::{Value, json};

/// A machine starting at `S`, with a `Done` Succeed state beside it.
fn with(state: Value) -> Value {
    json!({"StartAt": "S", "States": {"S": state, "Done": {"Type": "Succeed"}}})
}

/// A machine of one state, `S`.
fn alone(state: Value) -> Value {
    json!({"StartAt": "S", "States": {"S": state}})
}

/// `definition` must be refused, naming `state`, with a message containing `wanted`.
fn refused(definition: Value, state: Option<&str>, wanted: &str) {
    let error = parse(&definition).expect_err(&definition.to_string());
    assert_eq!(error.state.as_deref(), state, "{}", error.message);
    if let Some(state) = state {
        assert!(
            error.message.starts_with(&format!("State \"{state}\": ")),
            "{}",
            error.message
        );
    }
    assert!(
        error.message.contains(wanted),
        "wanted '{wanted}' in '{}'",
        error.message
    );
}

fn parsed(definition: Value) -> Definition {
    parse(&definition).unwrap_or_else(|e| panic!("{}: {definition}", e.message))
}

fn context() -> Value {
    json!({
        "Execution": {"Id": "arn:exec", "Input": {}, "Name": "e", "StartTime": "2024-01-01T00:00:00Z"},
        "State": {"Name": "S", "EnteredTime": "2024-01-01T00:00:00Z", "RetryCount": 0},
        "StateMachine": {"Id": "arn:sm", "Name": "sm"},
        "Task": {"Token": "tok"}
    })
}

#[test]
fn every_state_type_parses() {
    let definition = parsed(json!({
        "Comment": "all types",
        "Version": "1.0",
        "TimeoutSeconds": 300,
        "QueryLanguage": "JSONPath",
        "StartAt": "Pass",
        "States": {
            "Pass": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.r", "Next": "Task"},
            "Task": {
                "Type": "Task", "Resource": "hello", "Comment": "c",
                "InputPath": "$", "Parameters": {"a.$": "$.r.x", "token.$": "$$.Task.Token"},
                "ResultSelector": {"v.$": "$.value"}, "ResultPath": "$.task", "OutputPath": "$",
                "TimeoutSeconds": 60, "HeartbeatSeconds": 10,
                "Retry": [
                    {"ErrorEquals": ["Custom", "States.Timeout"], "IntervalSeconds": 2, "MaxAttempts": 5,
                     "BackoffRate": 1.5, "MaxDelaySeconds": 10, "JitterStrategy": "FULL", "Comment": "x"},
                    {"ErrorEquals": ["States.ALL"]}
                ],
                "Catch": [
                    {"ErrorEquals": ["Custom"], "Next": "Failed", "ResultPath": "$.error"},
                    {"ErrorEquals": ["States.ALL"], "Next": "Failed", "ResultPath": null}
                ],
                "Next": "Choose"
            },
            "Choose": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.task.v", "NumericGreaterThan": 10, "Next": "Wait"},
                    {"And": [{"Variable": "$.a", "IsPresent": true}, {"Not": {"Variable": "$.a", "StringEquals": "x"}}],
                     "Next": "Parallel"}
                ],
                "Default": "Map"
            },
            "Wait": {"Type": "Wait", "Seconds": 5, "Next": "Parallel"},
            "Parallel": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "B1", "States": {"B1": {"Type": "Pass", "End": true}}},
                    {"StartAt": "B2", "Comment": "b", "States": {"B2": {"Type": "Succeed"}}}
                ],
                "ResultSelector": {"first.$": "$[0]"},
                "Retry": [{"ErrorEquals": ["States.BranchFailed"]}],
                "Next": "Map"
            },
            "Map": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"value.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index", "all.$": "$.items"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Each",
                    "States": {"Each": {"Type": "Pass", "End": true}}
                },
                "MaxConcurrency": 4,
                "ToleratedFailurePercentage": 10,
                "Label": "each",
                "ResultPath": "$.mapped",
                "Next": "Done"
            },
            "Done": {"Type": "Succeed", "OutputPath": "$.mapped"},
            "Failed": {"Type": "Fail", "Error": "E", "Cause": "C"}
        }
    }));
    assert_eq!(definition.start_at, "Pass");
    assert_eq!(definition.timeout_seconds, Some(300));
    assert_eq!(definition.comment.as_deref(), Some("all types"));
    let kinds: Vec<(&str, &str)> = definition
        .states
        .iter()
        .map(|(name, state)| (name.as_str(), state.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("Choose", "Choice"),
            ("Done", "Succeed"),
            ("Failed", "Fail"),
            ("Map", "Map"),
            ("Parallel", "Parallel"),
            ("Pass", "Pass"),
            ("Task", "Task"),
            ("Wait", "Wait"),
        ]
    );
    let Some(State::Task(task)) = definition.state("Task") else {
        panic!("Task");
    };
    assert_eq!(task.resource, "hello");
    assert_eq!(task.next, Next::Next("Choose".to_string()));
    assert_eq!(task.retry.len(), 2);
    assert_eq!(
        task.retry[0],
        Retrier {
            error_equals: vec!["Custom".to_string(), "States.Timeout".to_string()],
            interval_seconds: 2.0,
            max_attempts: 5,
            backoff_rate: 1.5,
            max_delay_seconds: Some(10.0),
            jitter_full: true,
        }
    );
    assert_eq!(
        task.retry[1],
        Retrier {
            error_equals: vec!["States.ALL".to_string()],
            interval_seconds: 1.0,
            max_attempts: 3,
            backoff_rate: 2.0,
            max_delay_seconds: None,
            jitter_full: false,
        }
    );
    assert_eq!(task.catch[0].result_path, Some(Some("$.error".to_string())));
    assert_eq!(task.catch[1].result_path, Some(None));
    assert_eq!(task.timeout(&json!({})), Ok(Some(60)));
    assert_eq!(task.heartbeat(&json!({})), Ok(Some(10)));
    let state = definition.state("Task").unwrap();
    assert_eq!(state.retry().len(), 2);
    assert_eq!(state.catch().len(), 2);
    assert_eq!(state.next(), Some(&Next::Next("Choose".to_string())));
    assert_eq!(definition.state("Choose").unwrap().next(), None);
    assert_eq!(definition.state("Failed").unwrap().next(), None);
    assert!(definition.state("Wait").unwrap().retry().is_empty());

    // The Task's processing, end to end.
    let raw = json!({"r": {"x": 7}});
    let effective = task.io.effective_input(&raw, &context()).unwrap();
    assert_eq!(effective, json!({"a": 7, "token": "tok"}));
    let output = task
        .io
        .output(&raw, json!({"value": 3, "noise": 1}), &context())
        .unwrap();
    assert_eq!(output, json!({"r": {"x": 7}, "task": {"v": 3}}));

    let Some(State::Parallel(parallel)) = definition.state("Parallel") else {
        panic!("Parallel");
    };
    assert_eq!(parallel.branches.len(), 2);
    assert_eq!(parallel.branches[1].comment.as_deref(), Some("b"));
    assert_eq!(
        parallel
            .io
            .output(&json!({}), json!([{"b": 1}, 2]), &context()),
        Ok(json!({"first": {"b": 1}}))
    );

    let Some(State::Map(map)) = definition.state("Map") else {
        panic!("Map");
    };
    assert_eq!(map.max_concurrency, 4);
    assert_eq!(map.tolerated_failure_percentage, Some(10.0));
    assert_eq!(map.label.as_deref(), Some("each"));
    assert_eq!(map.processor.start_at, "Each");
    let input = json!({"items": ["a", "b"]});
    let effective = map.io.effective_input(&input, &context()).unwrap();
    assert_eq!(effective, input, "a Map's Io applies no ItemSelector");
    let items = map.items(&effective, &context()).unwrap();
    assert_eq!(items, [json!("a"), json!("b")]);
    assert_eq!(
        map.item_input(&effective, &items[1], 1, &context()),
        Ok(json!({"value": "b", "index": 1, "all": ["a", "b"]}))
    );
    assert_eq!(map.concurrency(&effective), Ok(4));
    assert_eq!(map.tolerated_failures(&effective), Ok((None, Some(10.0))));

    let Some(State::Succeed(done)) = definition.state("Done") else {
        panic!("Done");
    };
    assert_eq!(
        done.io.effective_input(&json!({"mapped": [1]}), &context()),
        Ok(json!({"mapped": [1]}))
    );
    assert_eq!(
        done.io
            .output(&json!({"mapped": [1]}), json!({"mapped": [1]}), &context()),
        Ok(json!([1]))
    );
    let Some(State::Fail(failed)) = definition.state("Failed") else {
        panic!("Failed");
    };
    assert_eq!(
        failed.error_and_cause(&json!({})),
        ("E".to_string(), "C".to_string())
    );
    assert_eq!(definition.state("Failed").unwrap().io(), &Io::IDENTITY);
}

#[test]
fn pass_result_and_parameters() {
    let definition = parsed(alone(json!({
        "Type": "Pass", "Parameters": {"greeting.$": "States.Format('Hi {}', $.name)"}, "End": true
    })));
    let Some(State::Pass(pass)) = definition.state("S") else {
        panic!("Pass");
    };
    let raw = json!({"name": "Ann"});
    let effective = pass.io.effective_input(&raw, &context()).unwrap();
    let result = pass.result(effective);
    assert_eq!(
        pass.io.output(&raw, result, &context()),
        Ok(json!({"greeting": "Hi Ann"}))
    );
    assert_eq!(pass.next, Next::End);

    let definition = parsed(alone(
        json!({"Type": "Pass", "Result": "fixed", "ResultPath": "$.r", "End": true}),
    ));
    let Some(State::Pass(pass)) = definition.state("S") else {
        panic!("Pass");
    };
    assert_eq!(pass.result(json!("ignored")), json!("fixed"));
    assert_eq!(
        pass.io.output(&json!({}), json!("fixed"), &context()),
        Ok(json!({"r": "fixed"}))
    );
}

#[test]
fn choice_next_and_no_match() {
    let definition = parsed(json!({
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.n", "NumericEquals": 1, "Next": "One"},
                    {"Or": [
                        {"Variable": "$.s", "StringMatches": "a*"},
                        {"Variable": "$.n", "NumericGreaterThanEqualsPath": "$.limit"}
                    ], "Next": "Two"}
                ]
            },
            "One": {"Type": "Succeed"},
            "Two": {"Type": "Succeed"}
        }
    }));
    let Some(State::Choice(choice)) = definition.state("C") else {
        panic!("Choice");
    };
    assert_eq!(choice.next(&json!({"n": 1})), Ok("One"));
    assert_eq!(choice.next(&json!({"s": "abc"})), Ok("Two"));
    assert_eq!(choice.next(&json!({"n": 5, "limit": 5})), Ok("Two"));
    let error = choice.next(&json!({"n": 2})).unwrap_err();
    assert_eq!(error.error, "States.NoChoiceMatched");
    let with_default = Choice {
        default: Some("One".to_string()),
        ..choice.clone()
    };
    assert_eq!(with_default.next(&json!({})), Ok("One"));
}

#[test]
fn wait_until() {
    let wait = |field: Value| {
        let mut state = json!({"Type": "Wait", "Next": "Done"});
        state
            .as_object_mut()
            .unwrap()
            .extend(field.as_object().unwrap().clone());
        let definition = parsed(with(state));
        let Some(State::Wait(wait)) = definition.state("S") else {
            panic!("Wait");
        };
        wait.clone()
    };
    let now = 1_700_000_000_000;
    let input = json!({"s": 3, "t": "2030-01-01T00:00:00Z", "past": "2000-01-01T00:00:00Z", "bad": "soon", "neg": -1});
    assert_eq!(
        wait(json!({"Seconds": 10})).until_ms(&input, now),
        Ok(now + 10_000)
    );
    assert_eq!(wait(json!({"Seconds": 0})).until_ms(&input, now), Ok(now));
    assert_eq!(
        wait(json!({"SecondsPath": "$.s"})).until_ms(&input, now),
        Ok(now + 3_000)
    );
    assert_eq!(
        wait(json!({"Timestamp": "2030-01-01T00:00:00Z"})).until_ms(&input, now),
        Ok(1_893_456_000_000)
    );
    assert_eq!(
        wait(json!({"TimestampPath": "$.t"})).until_ms(&input, now),
        Ok(1_893_456_000_000)
    );
    assert_eq!(
        wait(json!({"TimestampPath": "$.past"})).until_ms(&input, now),
        Ok(now)
    );
    for (field, path) in [
        ("TimestampPath", "$.bad"),
        ("TimestampPath", "$.s"),
        ("TimestampPath", "$.missing"),
        ("SecondsPath", "$.neg"),
        ("SecondsPath", "$.t"),
        ("SecondsPath", "$.missing"),
    ] {
        let error = wait(json!({field: path}))
            .until_ms(&input, now)
            .unwrap_err();
        assert_eq!(error.error, "States.Runtime", "{field} {path}");
    }
}

#[test]
fn task_timeouts_from_paths() {
    let definition = parsed(alone(json!({
        "Type": "Task", "Resource": "a", "TimeoutSecondsPath": "$.t", "HeartbeatSecondsPath": "$.h", "End": true
    })));
    let Some(State::Task(task)) = definition.state("S") else {
        panic!("Task");
    };
    assert_eq!(task.timeout(&json!({"t": 30, "h": 5})), Ok(Some(30)));
    assert_eq!(task.heartbeat(&json!({"t": 30, "h": 5})), Ok(Some(5)));
    assert_eq!(
        task.timeout(&json!({"t": 0})).unwrap_err().error,
        "States.Runtime"
    );
    assert_eq!(
        task.timeout(&json!({"t": "30"})).unwrap_err().error,
        "States.Runtime"
    );
    assert_eq!(
        task.heartbeat(&json!({})).unwrap_err().error,
        "States.Runtime"
    );
    let definition = parsed(alone(json!({"Type": "Task", "Resource": "a", "End": true})));
    let Some(State::Task(task)) = definition.state("S") else {
        panic!("Task");
    };
    assert_eq!(task.timeout(&json!({})), Ok(None));
    assert_eq!(task.heartbeat(&json!({})), Ok(None));
}

#[test]
fn map_variants() {
    let map = |state: Value| {
        let definition = parsed(alone(state));
        let Some(State::Map(map)) = definition.state("S") else {
            panic!("Map");
        };
        map.clone()
    };
    let processor = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    // Legacy names: Iterator and Parameters.
    let legacy = map(json!({
        "Type": "Map", "Iterator": processor, "Parameters": {"v.$": "$$.Map.Item.Value"}, "End": true
    }));
    assert_eq!(legacy.processor.start_at, "P");
    assert!(legacy.item_selector.is_some());
    assert!(!legacy.io.has_parameters());
    assert_eq!(
        legacy.items(&json!([1, 2]), &context()),
        Ok(vec![json!(1), json!(2)])
    );
    assert_eq!(
        legacy.item_input(&json!([1, 2]), &json!(2), 1, &context()),
        Ok(json!({"v": 2}))
    );
    assert_eq!(legacy.concurrency(&json!([])), Ok(0));
    assert_eq!(
        legacy
            .items(&json!({"not": "array"}), &context())
            .unwrap_err()
            .error,
        "States.Runtime"
    );

    let plain = map(
        json!({"Type": "Map", "ItemProcessor": processor, "ItemsPath": "$.list[*].v", "End": true}),
    );
    assert_eq!(
        plain.items(&json!({"list": [{"v": 1}, {"v": 2}]}), &context()),
        Ok(vec![json!(1), json!(2)])
    );
    assert_eq!(
        plain.item_input(&json!({}), &json!({"v": 1}), 0, &context()),
        Ok(json!({"v": 1}))
    );
    let missing =
        map(json!({"Type": "Map", "ItemProcessor": processor, "ItemsPath": "$.nope", "End": true}));
    assert_eq!(
        missing.items(&json!({}), &context()).unwrap_err().error,
        "States.Runtime"
    );
    let from_context = map(
        json!({"Type": "Map", "ItemProcessor": processor, "ItemsPath": "$$.Execution.Input.xs", "End": true}),
    );
    assert_eq!(
        from_context.items(&json!({}), &json!({"Execution": {"Input": {"xs": [true]}}})),
        Ok(vec![json!(true)])
    );
    let literal =
        map(json!({"Type": "Map", "ItemProcessor": processor, "Items": [1, "a"], "End": true}));
    assert_eq!(
        literal.items(&json!({}), &context()),
        Ok(vec![json!(1), json!("a")])
    );

    let dynamic = map(json!({
        "Type": "Map", "ItemProcessor": processor, "MaxConcurrencyPath": "$.c",
        "ToleratedFailureCountPath": "$.f", "ToleratedFailurePercentagePath": "$.p", "End": true
    }));
    assert_eq!(dynamic.concurrency(&json!({"c": 3})), Ok(3));
    assert_eq!(
        dynamic.concurrency(&json!({"c": -3})).unwrap_err().error,
        "States.Runtime"
    );
    assert_eq!(
        dynamic.tolerated_failures(&json!({"f": 2, "p": 50})),
        Ok((Some(2), Some(50.0)))
    );
    assert_eq!(
        dynamic
            .tolerated_failures(&json!({"f": 2, "p": 150}))
            .unwrap_err()
            .error,
        "States.Runtime"
    );

    let bad_selector = map(json!({
        "Type": "Map", "ItemProcessor": processor, "ItemSelector": {"v.$": "$.nope"}, "End": true
    }));
    assert_eq!(
        bad_selector
            .item_input(&json!({}), &json!(1), 0, &context())
            .unwrap_err()
            .error,
        "States.ParameterPathFailure"
    );
    let distributed = json!({
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
        "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}
    });
    map(json!({"Type": "Map", "ItemProcessor": distributed, "End": true}));
}

#[test]
fn cycles_are_allowed() {
    parsed(json!({
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Next": "B"},
            "B": {"Type": "Choice", "Choices": [{"Variable": "$.done", "BooleanEquals": true, "Next": "End"}], "Default": "A"},
            "End": {"Type": "Succeed"}
        }
    }));
}

#[test]
fn fail_paths() {
    let definition = parsed(alone(
        json!({"Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('n={}', $.n)"}),
    ));
    let Some(State::Fail(fail)) = definition.state("S") else {
        panic!("Fail");
    };
    assert_eq!(
        fail.error_and_cause(&json!({"e": "X", "n": 1})),
        ("X".to_string(), "n=1".to_string())
    );
}

#[test]
fn top_level_refusals() {
    refused(json!([]), None, "must be a JSON object");
    refused(
        json!({"States": {"A": {"Type": "Succeed"}}}),
        None,
        "StartAt is missing",
    );
    refused(
        json!({"StartAt": "B", "States": {"A": {"Type": "Succeed"}}}),
        None,
        "StartAt \"B\" names no state",
    );
    refused(
        json!({"StartAt": 1, "States": {"A": {"Type": "Succeed"}}}),
        None,
        "StartAt must be a string",
    );
    refused(json!({"StartAt": "A"}), None, "States is missing");
    refused(
        json!({"StartAt": "A", "States": {}}),
        None,
        "at least one state",
    );
    refused(
        json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}, "Extra": 1}),
        None,
        "unknown field \"Extra\"",
    );
    refused(
        json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}, "QueryLanguage": "JSONata"}),
        None,
        "JSONata is not supported",
    );
    refused(
        json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}, "Version": "2.0"}),
        None,
        "Version",
    );
    refused(
        json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}, "TimeoutSeconds": 0}),
        None,
        "TimeoutSeconds",
    );
    let long = "x".repeat(81);
    refused(
        json!({"StartAt": long, "States": {long.clone(): {"Type": "Succeed"}}}),
        Some(&long),
        "1 to 80 characters",
    );
}

#[test]
fn state_refusals_name_the_state() {
    let s = Some("S");
    let catch_all = |next: &str| json!({"ErrorEquals": ["States.ALL"], "Next": next});
    let cases: Vec<(Value, &str)> = vec![
        (json!({"Next": "Done"}), "Type is missing"),
        (
            json!({"Type": "Loop", "Next": "Done"}),
            "unknown Type \"Loop\"",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "Foo": 1}),
            "unknown field \"Foo\"",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "Resource": "x"}),
            "unknown field \"Resource\"",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "ResultSelector": {}}),
            "unknown field \"ResultSelector\"",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "QueryLanguage": "JSONata"}),
            "JSONata is not supported",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "Assign": {}}),
            "Assign",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "Output": {}}),
            "JSONata",
        ),
        (json!({"Type": "Pass"}), "Next or End is required"),
        (
            json!({"Type": "Pass", "End": false}),
            "Next or End is required",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "End": true}),
            "Next and End cannot both be given",
        ),
        (
            json!({"Type": "Pass", "Next": "Nowhere"}),
            "Next \"Nowhere\" names no state",
        ),
        (json!({"Type": "Pass", "Next": 3}), "Next must be a string"),
        (
            json!({"Type": "Pass", "End": "yes"}),
            "End must be true or false",
        ),
        (
            json!({"Type": "Succeed", "Next": "Done"}),
            "a Succeed state cannot have Next",
        ),
        (
            json!({"Type": "Fail", "End": true}),
            "a Fail state cannot have End",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": true, "Next": "Done"}], "Next": "Done"}),
            "a Choice state cannot have Next",
        ),
        (
            json!({"Type": "Succeed", "ResultPath": "$.x"}),
            "unknown field \"ResultPath\"",
        ),
        (
            json!({"Type": "Fail", "InputPath": "$"}),
            "unknown field \"InputPath\"",
        ),
        (
            json!({"Type": "Wait", "Seconds": 1, "Next": "Done", "Parameters": {}}),
            "unknown field \"Parameters\"",
        ),
        // Paths.
        (
            json!({"Type": "Pass", "Next": "Done", "InputPath": "a.b"}),
            "InputPath \"a.b\" is not a valid path",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "InputPath": "$$.Execution"}),
            "not the context object",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "OutputPath": "$.a b"}),
            "OutputPath \"$.a b\"",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "OutputPath": 1}),
            "OutputPath must be a path or null",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "ResultPath": "$.a[*]"}),
            "must be a reference path",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "ResultPath": "$..a"}),
            "must be a reference path",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "ResultPath": "$$.a"}),
            "must be a reference path",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "Parameters": {"x.$": "hello"}}),
            "Parameters: the value of \"x.$\" must be a path or an intrinsic function",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "Parameters": {"x.$": 5}}),
            "must be a path or an intrinsic function",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "Parameters": {"x.$": "States.Nope()"}}),
            "unknown intrinsic function 'States.Nope'",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "Parameters": {"x.$": "States.Format('{}', $.a"}}),
            "not closed",
        ),
        (
            json!({"Type": "Pass", "Next": "Done", "Parameters": "{% $x %}"}),
            "JSONata is not supported",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "ResultSelector": {"x.$": "$.a["}}),
            "ResultSelector",
        ),
        // Task.
        (
            json!({"Type": "Task", "Next": "Done"}),
            "Resource is missing",
        ),
        (
            json!({"Type": "Task", "Resource": "", "Next": "Done"}),
            "Resource must be a non-empty string",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Credentials": {}}),
            "Credentials is not supported",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "TimeoutSeconds": 0}),
            "TimeoutSeconds must be an integer from 1",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "TimeoutSeconds": 5, "TimeoutSecondsPath": "$.t"}),
            "cannot both be given",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "TimeoutSeconds": 5, "HeartbeatSeconds": 5}),
            "HeartbeatSeconds (5) must be less than TimeoutSeconds (5)",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "HeartbeatSecondsPath": "$.h[*]"}),
            "must be a reference path",
        ),
        // Retry.
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Retry": {}}),
            "Retry must be an array",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Retry": [{}]}),
            "Retry[0]: ErrorEquals is missing",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Retry": [{"ErrorEquals": []}]}),
            "non-empty",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Retry": [{"ErrorEquals": ["States.ALL", "X"]}]}),
            "States.ALL must be the only error name",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}),
            "Retry[0]: the retrier with States.ALL must be the last one",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Retry": [{"ErrorEquals": ["States.Bogus"]}]}),
            "unknown error name \"States.Bogus\"",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Retry": [{"ErrorEquals": ["X"], "MaxAttempts": -1}]}),
            "MaxAttempts must be an integer from 0",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Retry": [{"ErrorEquals": ["X"], "BackoffRate": 0.5}]}),
            "BackoffRate must be a number of at least 1.0",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Retry": [{"ErrorEquals": ["X"], "IntervalSeconds": 0}]}),
            "IntervalSeconds must be an integer from 1",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Retry": [{"ErrorEquals": ["X"], "IntervalSeconds": 1.5}]}),
            "IntervalSeconds must be an integer",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Retry": [{"ErrorEquals": ["X"], "MaxDelaySeconds": 0}]}),
            "MaxDelaySeconds",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Retry": [{"ErrorEquals": ["X"], "JitterStrategy": "SOME"}]}),
            "JitterStrategy",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Retry": [{"ErrorEquals": ["X"], "Wait": 1}]}),
            "Retry[0]: unknown field \"Wait\"",
        ),
        // Catch.
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Catch": [catch_all("Done"), {"ErrorEquals": ["X"], "Next": "Done"}]}),
            "Catch[0]: the catcher with States.ALL must be the last one",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Catch": [{"ErrorEquals": ["X", "States.ALL"], "Next": "Done"}]}),
            "States.ALL must be the only error name",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Catch": [{"ErrorEquals": ["X"]}]}),
            "Catch[0]: Next is missing",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Catch": [catch_all("Gone")]}),
            "Catch[0]: Next \"Gone\" names no state",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Catch": [{"ErrorEquals": ["X"], "Next": "Done", "ResultPath": "$[*]"}]}),
            "Catch[0]: ResultPath",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Catch": [{"ErrorEquals": ["X"], "Next": "Done", "Output": {}}]}),
            "JSONata",
        ),
        (
            json!({"Type": "Task", "Resource": "a", "Next": "Done", "Catch": [{"ErrorEquals": ["States.Nope"], "Next": "Done"}]}),
            "unknown error name",
        ),
        // Choice.
        (json!({"Type": "Choice"}), "Choices is missing"),
        (
            json!({"Type": "Choice", "Choices": []}),
            "Choices must have at least one rule",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": true}]}),
            "Choices[0]: Next is missing",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": true, "Next": "Gone"}]}),
            "Choices[0]: Next \"Gone\" names no state",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": true, "Next": "Done"}], "Default": "Gone"}),
            "Default \"Gone\" names no state",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "Next": "Done"}]}),
            "needs a comparator",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": true, "IsString": true, "Next": "Done"}]}),
            "exactly one comparator",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"IsNull": true, "Next": "Done"}]}),
            "Variable is missing",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "a", "IsNull": true, "Next": "Done"}]}),
            "Variable \"a\" is not a valid path",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "StringEquals": 1, "Next": "Done"}]}),
            "StringEquals must be a string",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "NumericEquals": "1", "Next": "Done"}]}),
            "NumericEquals must be a number",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "BooleanEquals": "true", "Next": "Done"}]}),
            "BooleanEquals must be a boolean",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "TimestampEquals": "today", "Next": "Done"}]}),
            "TimestampEquals must be an RFC 3339 timestamp",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "IsPresent": "yes", "Next": "Done"}]}),
            "IsPresent must be a boolean",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "StringEqualsPath": "b", "Next": "Done"}]}),
            "StringEqualsPath \"b\"",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "StringEqualz": "b", "Next": "Done"}]}),
            "unknown field \"StringEqualz\" in a choice rule",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"And": [], "Next": "Done"}]}),
            "And must be a non-empty array",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"And": [{"Variable": "$.a", "IsNull": true, "Next": "Done"}], "Next": "Done"}]}),
            "Choices[0]: And[0]: a nested rule cannot have Next",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Not": [], "Next": "Done"}]}),
            "Not must be a rule",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Not": {"Variable": "$.a"}, "Next": "Done"}]}),
            "Not: a rule needs a comparator",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"And": [{"Variable": "$.a", "IsNull": true}], "Variable": "$.a", "Next": "Done"}]}),
            "cannot have Variable",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Condition": "{% true %}", "Next": "Done"}]}),
            "JSONata is not supported",
        ),
        // Wait.
        (
            json!({"Type": "Wait", "Next": "Done"}),
            "needs one of Seconds, SecondsPath, Timestamp or TimestampPath",
        ),
        (
            json!({"Type": "Wait", "Seconds": 1, "SecondsPath": "$.s", "Next": "Done"}),
            "only one of",
        ),
        (
            json!({"Type": "Wait", "Seconds": -1, "Next": "Done"}),
            "Seconds must be an integer from 0",
        ),
        (
            json!({"Type": "Wait", "Timestamp": "2024-01-01", "Next": "Done"}),
            "Timestamp must be an RFC 3339 timestamp",
        ),
        (
            json!({"Type": "Wait", "TimestampPath": "$.t[*]", "Next": "Done"}),
            "must be a reference path",
        ),
        // Fail.
        (
            json!({"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}),
            "Error and ErrorPath cannot both be given",
        ),
        (
            json!({"Type": "Fail", "CausePath": "$.c[*]"}),
            "CausePath \"$.c[*]\" must be a reference path",
        ),
        (
            json!({"Type": "Fail", "Error": 5}),
            "Error must be a string",
        ),
        // Parallel.
        (
            json!({"Type": "Parallel", "Next": "Done"}),
            "Branches is missing",
        ),
        (
            json!({"Type": "Parallel", "Branches": [], "Next": "Done"}),
            "non-empty",
        ),
        (
            json!({"Type": "Parallel", "Branches": [{"StartAt": "I", "States": {"I": {"Type": "Pass"}}}], "Next": "Done"}),
            "branch 0: State \"I\": Next or End is required",
        ),
        (
            json!({"Type": "Parallel", "Branches": [{"StartAt": "I", "States": {"I": {"Type": "Pass", "Next": "Done"}}}], "Next": "Done"}),
            "branch 0: State \"I\": Next \"Done\" names no state",
        ),
        (
            json!({"Type": "Parallel", "Branches": [{"StartAt": "I", "States": {"I": {"Type": "Succeed"}}, "TimeoutSeconds": 5}], "Next": "Done"}),
            "branch 0: unknown field \"TimeoutSeconds\"",
        ),
        // Map.
        (
            json!({"Type": "Map", "Next": "Done"}),
            "ItemProcessor is missing",
        ),
        (
            json!({"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Bad"}}}, "Next": "Done"}),
            "ItemProcessor: State \"I\": unknown Type \"Bad\"",
        ),
        (
            json!({"Type": "Map", "Iterator": {"StartAt": "I", "States": {"I": {"Type": "Pass"}}}, "Next": "Done"}),
            "Iterator: State \"I\": Next or End is required",
        ),
        (
            json!({"Type": "Map", "Iterator": {"StartAt": "I", "ProcessorConfig": {}, "States": {"I": {"Type": "Succeed"}}}, "Next": "Done"}),
            "Iterator: unknown field \"ProcessorConfig\"",
        ),
        (
            json!({"Type": "Map", "ItemProcessor": {"StartAt": "I", "ProcessorConfig": {"Mode": "FAST"}, "States": {"I": {"Type": "Succeed"}}}, "Next": "Done"}),
            "Mode must be",
        ),
        (
            json!({"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "ItemReader": {}, "Next": "Done"}),
            "ItemReader is not supported",
        ),
        (
            json!({"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "ItemBatcher": {}, "Next": "Done"}),
            "ItemBatcher is not supported",
        ),
        (
            json!({"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "ResultWriter": {}, "Next": "Done"}),
            "ResultWriter is not supported",
        ),
        (
            json!({"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "ItemSelector": {}, "Parameters": {}, "Next": "Done"}),
            "ItemSelector and Parameters cannot both be given",
        ),
        (
            json!({"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "Iterator": {}, "Next": "Done"}),
            "ItemProcessor and Iterator are both given",
        ),
        (
            json!({"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "MaxConcurrency": -1, "Next": "Done"}),
            "MaxConcurrency",
        ),
        (
            json!({"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "ToleratedFailurePercentage": 101, "Next": "Done"}),
            "ToleratedFailurePercentage",
        ),
        (
            json!({"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "ItemsPath": "items", "Next": "Done"}),
            "ItemsPath \"items\"",
        ),
        (
            json!({"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "Items": "{% $x %}", "Next": "Done"}),
            "Items must be an array",
        ),
        (
            json!({"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "Items": [], "ItemsPath": "$", "Next": "Done"}),
            "cannot both be given",
        ),
        (
            json!({"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "Label": "x".repeat(41), "Next": "Done"}),
            "Label",
        ),
    ];
    for (state, wanted) in cases {
        refused(with(state), s, wanted);
    }
}

#[test]
fn nested_refusals_name_both_states() {
    refused(
        json!({
            "StartAt": "Outer",
            "States": {
                "Outer": {
                    "Type": "Parallel",
                    "Branches": [
                        {"StartAt": "Ok", "States": {"Ok": {"Type": "Succeed"}}},
                        {"StartAt": "Inner", "States": {"Inner": {
                            "Type": "Map", "End": true,
                            "ItemProcessor": {"StartAt": "Deep", "States": {"Deep": {"Type": "Task", "End": true}}}
                        }}}
                    ],
                    "End": true
                }
            }
        }),
        Some("Outer"),
        "State \"Outer\": branch 1: State \"Inner\": ItemProcessor: State \"Deep\": Resource is missing",
    );
}

#[test]
fn unreachable_states_are_refused() {
    refused(
        json!({
            "StartAt": "A",
            "States": {"A": {"Type": "Succeed"}, "Lost": {"Type": "Pass", "Next": "A"}}
        }),
        Some("Lost"),
        "not reachable from StartAt \"A\"",
    );
    // Reached only through a catcher, a Choice rule or a Default: fine.
    parsed(json!({
        "StartAt": "T",
        "States": {
            "T": {"Type": "Task", "Resource": "x", "Next": "C", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]},
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "IsPresent": true, "Next": "Yes"}], "Default": "No"},
            "Caught": {"Type": "Fail"},
            "Yes": {"Type": "Succeed"},
            "No": {"Type": "Succeed"}
        }
    }));
    refused(
        json!({
            "StartAt": "P",
            "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Succeed"}, "B": {"Type": "Succeed"}}}
            ]}}
        }),
        Some("P"),
        "branch 0: State \"B\": the state is not reachable",
    );
}

#[test]
fn definition_error_display_is_the_message() {
    let error = parse(&with(json!({"Type": "Pass"}))).unwrap_err();
    assert_eq!(error.to_string(), "State \"S\": Next or End is required");
}
