"""Drives Gust's Step Functions API with boto3's `stepfunctions` client, unchanged but for its
endpoint URL (and `inject_host_prefix=False`, which StartSyncExecution's `sync-` host prefix
needs with any endpoint URL).

Run by crates/cli/tests/all/workflows_api.rs with tests/lambda/.venv/bin/python, against a
server where action `inc` (adds 1 to `n`) and `echo` (answers its parameters) exist.

Environment: GUST_ENDPOINT (http://127.0.0.1:port), GUST_KEY_ID (the namespace key's uuid),
GUST_SECRET (the key). Each check that fails raises; the last line printed is a JSON object
the Rust test reads.
"""

import json
import os
import time

import boto3
import botocore.config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["GUST_ENDPOINT"]
KEY_ID = os.environ["GUST_KEY_ID"]
SECRET = os.environ["GUST_SECRET"]
REGION = "us-east-1"
MACHINE_PREFIX = f"arn:aws:states:{REGION}:000000000000:stateMachine:"
EXECUTION_PREFIX = f"arn:aws:states:{REGION}:000000000000:execution:"
ROLE = "arn:aws:iam::000000000000:role/workflows"


def client(key_id=KEY_ID, secret=SECRET):
    return boto3.client(
        "stepfunctions",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=botocore.config.Config(
            # One attempt: a refusal must be seen as it is, and nothing is run twice.
            retries={"max_attempts": 1, "mode": "standard"},
            inject_host_prefix=False,
        ),
    )


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


def refused(call, code, status=400):
    """Runs `call`, which must raise ClientError `code` with HTTP `status`; returns the error."""
    try:
        call()
    except ClientError as e:
        got = (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
        if got != (code, status):
            raise AssertionError(f"expected {code} {status}, got {got}: {e}") from e
        print(f"ok: refused with {code} {status}: {e.response['Error'].get('Message')}", flush=True)
        return e
    raise AssertionError(f"expected {code} {status}, but the call succeeded")


def until(what, probe, seconds=60):
    """Polls `probe` until it returns something truthy; returns it."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


FLOW = {
    "Comment": "inc, then wait for a person's approval through a task token",
    "StartAt": "Inc",
    "States": {
        "Inc": {"Type": "Task", "Resource": "inc", "Next": "Approve"},
        "Approve": {
            "Type": "Task",
            "Resource": "echo.waitForTaskToken",
            "Parameters": {"token.$": "$$.Task.Token", "n.$": "$.n"},
            "ResultPath": "$.approval",
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}

SLEEPY = {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 600, "End": True}}}

QUICK = {
    "StartAt": "Shape",
    "States": {
        "Shape": {"Type": "Pass", "Parameters": {"doubled.$": "States.MathAdd($.n, $.n)"}, "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}


def history(sfn, arn, **kw):
    events = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn, **kw):
        events.extend(page["events"])
    return events


def token_of(sfn, arn):
    """The task token the Approve step was scheduled with (in its parameters)."""
    for e in history(sfn, arn):
        if e["type"] == "TaskScheduled":
            params = json.loads(e["taskScheduledEventDetails"]["parameters"])
            if "token" in params:
                return params["token"]
    return None


def main():
    sfn = client()
    refused(lambda: client(secret=SECRET + "x").list_state_machines(), "InvalidSignatureException", 403)
    refused(
        lambda: client(key_id="00000000-0000-0000-0000-000000000000").list_state_machines(),
        "UnrecognizedClientException",
        403,
    )

    bad = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}
    e = refused(
        lambda: sfn.create_state_machine(name="flow", definition=json.dumps(bad), roleArn=ROLE),
        "InvalidDefinition",
    )
    check('"A"' in e.response["Error"]["Message"], "an invalid definition's error names the state")
    refused(lambda: sfn.create_state_machine(name="flow", definition="{", roleArn=ROLE), "InvalidDefinition")
    refused(lambda: sfn.create_state_machine(name="a b", definition=json.dumps(FLOW), roleArn=ROLE), "InvalidName")
    check(sfn.list_state_machines()["stateMachines"] == [], "nothing was created by the refusals")

    created = sfn.create_state_machine(name="flow", definition=json.dumps(FLOW), roleArn=ROLE)
    arn = created["stateMachineArn"]
    check(arn == MACHINE_PREFIX + "flow", "CreateStateMachine answers its ARN")
    again = sfn.create_state_machine(name="flow", definition=json.dumps(FLOW), roleArn=ROLE)
    check(again["stateMachineArn"] == arn, "creating the same state machine again answers it")
    refused(
        lambda: sfn.create_state_machine(name="flow", definition=json.dumps(QUICK), roleArn=ROLE),
        "StateMachineAlreadyExists",
    )
    d = sfn.describe_state_machine(stateMachineArn=arn)
    check(d["status"] == "ACTIVE" and d["type"] == "STANDARD", "DescribeStateMachine: ACTIVE, STANDARD")
    check(json.loads(d["definition"]) == FLOW, "the definition reads back as given")
    names = [m["name"] for m in sfn.list_state_machines()["stateMachines"]]
    check(names == ["flow"], "ListStateMachines lists it")
    refused(
        lambda: sfn.describe_state_machine(stateMachineArn=MACHINE_PREFIX + "nope"),
        "StateMachineDoesNotExist",
    )

    started = sfn.start_execution(stateMachineArn=arn, name="run-1", input=json.dumps({"n": 1}))
    run = started["executionArn"]
    check(run == EXECUTION_PREFIX + "flow:run-1", "StartExecution answers the execution's ARN")
    token = until("the Approve step's token", lambda: token_of(sfn, run))
    again = sfn.start_execution(stateMachineArn=arn, name="run-1", input=json.dumps({"n": 1}))
    check(again["executionArn"] == run, "starting a running execution's name again answers it")
    d = sfn.describe_execution(executionArn=run)
    check(d["status"] == "RUNNING", "the run waits for its callback")
    refused(lambda: sfn.send_task_success(taskToken=token, output="{nope"), "InvalidOutput")
    sfn.send_task_success(taskToken=token, output=json.dumps({"approved": True}))
    d = until(
        "run-1 to succeed",
        lambda: (lambda x: x if x["status"] != "RUNNING" else None)(sfn.describe_execution(executionArn=run)),
    )
    check(d["status"] == "SUCCEEDED", "the run succeeded once the task token was sent")
    refused(lambda: sfn.send_task_success(taskToken=token, output="{}"), "TaskDoesNotExist")
    out = json.loads(d["output"])
    check(out["n"] == 2 and out["approval"] == {"approved": True}, "its output holds both steps' results")
    check(json.loads(d["input"]) == {"n": 1}, "DescribeExecution gives its input")
    check(d["stopDate"] >= d["startDate"], "start and stop dates")

    events = history(sfn, run, maxResults=2)
    ids = [e["id"] for e in events]
    check(ids == list(range(1, len(ids) + 1)), "history pages of 2 read every event once, in order")
    check(events[0]["type"] == "ExecutionStarted" and events[-1]["type"] == "ExecutionSucceeded", "first and last events")
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]
    check(entered == ["Inc", "Approve", "Done"], "stateEnteredEventDetails name each state")
    scheduled = [e for e in events if e["type"] == "TaskScheduled"]
    check(all("taskScheduledEventDetails" in e for e in scheduled), "taskScheduledEventDetails")
    newest = sfn.get_execution_history(executionArn=run, reverseOrder=True, maxResults=1)
    check(newest["events"][0]["type"] == "ExecutionSucceeded" and "nextToken" in newest, "reverse order")

    listed = sfn.list_executions(stateMachineArn=arn)["executions"]
    check([(x["name"], x["status"]) for x in listed] == [("run-1", "SUCCEEDED")], "ListExecutions")
    check(sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"] == [], "statusFilter")
    refused(
        lambda: sfn.start_execution(stateMachineArn=arn, name="run-1", input="{}"),
        "ExecutionAlreadyExists",
    )
    refused(lambda: sfn.start_execution(stateMachineArn=arn, input="{nope"), "InvalidExecutionInput")
    refused(
        lambda: sfn.describe_execution(executionArn=EXECUTION_PREFIX + "flow:nope"),
        "ExecutionDoesNotExist",
    )

    sleepy = sfn.create_state_machine(name="sleepy", definition=json.dumps(SLEEPY), roleArn=ROLE)
    nap = sfn.start_execution(stateMachineArn=sleepy["stateMachineArn"])["executionArn"]
    sfn.stop_execution(executionArn=nap, error="Enough", cause="stopped by the test")
    d = until(
        "the stopped run",
        lambda: (lambda x: x if x["status"] != "RUNNING" else None)(sfn.describe_execution(executionArn=nap)),
    )
    check((d["status"], d.get("error")) == ("ABORTED", "Enough"), "StopExecution aborts a run")

    quick = sfn.create_state_machine(name="quick", definition=json.dumps(QUICK), roleArn=ROLE, type="EXPRESS")
    sync = sfn.start_sync_execution(stateMachineArn=quick["stateMachineArn"], input=json.dumps({"n": 21}))
    check(sync["status"] == "SUCCEEDED", "StartSyncExecution waits for the end")
    check(json.loads(sync["output"]) == {"doubled": 42}, "and answers the output")

    sfn.delete_state_machine(stateMachineArn=quick["stateMachineArn"])
    refused(
        lambda: sfn.describe_state_machine(stateMachineArn=quick["stateMachineArn"]),
        "StateMachineDoesNotExist",
    )
    names = sorted(m["name"] for m in sfn.list_state_machines()["stateMachines"])
    print(json.dumps({"machines": names, "run": run, "output": out}))


if __name__ == "__main__":
    main()
