"""Drives Gust's asynchronous invocation configurations with boto3, unchanged but for its
endpoint URL (decision 0028).

Run by crates/cli/tests/all/delivery.rs with tests/lambda/.venv/bin/python against a
`gust serve --delivery-retry-scale 0.01`: PutFunctionEventInvokeConfig,
UpdateFunctionEventInvokeConfig (a merge), GetFunctionEventInvokeConfig,
ListFunctionEventInvokeConfigs and DeleteFunctionEventInvokeConfig, Lambda's ranges and
destination types refused, then an Event invocation of a failing function whose config
sends its failure to another function. Needs Gust's Lambda runtime (lambda:python3.11).

Environment: GUST_ENDPOINT, GUST_KEY_ID, GUST_SECRET. Each check that fails raises; the last
line printed is a JSON object the Rust test reads.
"""

import datetime
import io
import json
import os
import zipfile

import boto3
import botocore.config
from botocore.exceptions import ClientError

REGION = "us-east-1"
ARN_PREFIX = f"arn:aws:lambda:{REGION}:000000000000:function:"
ROLE = "arn:aws:iam::000000000000:role/gust-test"

FAILING = '''
def handler(event, context):
    raise ValueError("asked to fail")
'''

SINK = '''
def handler(event, context):
    return {"event": event}
'''


def client():
    return boto3.client(
        "lambda",
        endpoint_url=os.environ["GUST_ENDPOINT"],
        region_name=REGION,
        aws_access_key_id=os.environ["GUST_KEY_ID"],
        aws_secret_access_key=os.environ["GUST_SECRET"],
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


def refused(call, code, status):
    try:
        call()
    except ClientError as e:
        got = (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
        if got != (code, status):
            raise AssertionError(f"expected {code} {status}, got {got}: {e}") from e
        print(f"ok: refused with {code} {status}: {e.response['Error'].get('Message')}", flush=True)
        return e
    raise AssertionError(f"expected {code} {status}, but the call succeeded")


def zipped(source):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("app.py", source)
    return buf.getvalue()


def main():
    lam = client()
    for name, source in [("failing", FAILING), ("sink", SINK)]:
        lam.create_function(
            FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
            Code={"ZipFile": zipped(source)},
        )

    refused(lambda: lam.get_function_event_invoke_config(FunctionName="failing"), "ResourceNotFoundException", 404)
    refused(
        lambda: lam.put_function_event_invoke_config(FunctionName="nope", MaximumRetryAttempts=1),
        "ResourceNotFoundException",
        404,
    )
    refused(
        lambda: lam.put_function_event_invoke_config(FunctionName="failing", MaximumRetryAttempts=3),
        "InvalidParameterValueException",
        400,
    )
    refused(
        lambda: lam.put_function_event_invoke_config(FunctionName="failing", MaximumEventAgeInSeconds=21601),
        "InvalidParameterValueException",
        400,
    )
    refused(
        lambda: lam.put_function_event_invoke_config(
            FunctionName="failing",
            DestinationConfig={"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:000000000000:dlq"}},
        ),
        "InvalidParameterValueException",
        400,
    )
    refused(
        lambda: lam.put_function_event_invoke_config(
            FunctionName="failing",
            DestinationConfig={"OnFailure": {"Destination": ARN_PREFIX + "missing"}},
        ),
        "InvalidParameterValueException",
        400,
    )
    refused(lambda: lam.get_function_event_invoke_config(FunctionName="failing"), "ResourceNotFoundException", 404)
    print("ok: refused configs stored nothing", flush=True)

    put = lam.put_function_event_invoke_config(
        FunctionName="failing",
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": ARN_PREFIX + "sink"}},
    )
    check(put["FunctionArn"] == ARN_PREFIX + "failing:$LATEST", "Put answers the function's ARN")
    check(put["MaximumRetryAttempts"] == 1, "Put keeps MaximumRetryAttempts")
    check(put["MaximumEventAgeInSeconds"] == 21600, "Put defaults MaximumEventAgeInSeconds to 6 h")
    check(put["DestinationConfig"]["OnFailure"]["Destination"] == ARN_PREFIX + "sink", "Put keeps the destination")
    check(isinstance(put["LastModified"], datetime.datetime), "LastModified is a time")

    updated = lam.update_function_event_invoke_config(FunctionName="failing", MaximumEventAgeInSeconds=3600)
    check(updated["MaximumRetryAttempts"] == 1, "Update keeps what it leaves out")
    check(updated["MaximumEventAgeInSeconds"] == 3600, "Update changes what it gives")
    check(updated["DestinationConfig"]["OnFailure"]["Destination"] == ARN_PREFIX + "sink", "Update keeps the destination")
    got = lam.get_function_event_invoke_config(FunctionName=ARN_PREFIX + "failing")
    check(got["MaximumEventAgeInSeconds"] == 3600, "Get shows the merged config, by ARN too")
    listed = lam.list_function_event_invoke_configs(FunctionName="failing")["FunctionEventInvokeConfigs"]
    check(len(listed) == 1 and listed[0]["MaximumRetryAttempts"] == 1, "List lists the one config")

    # Put replaces: the sink's config, then deleted.
    lam.put_function_event_invoke_config(FunctionName="sink", MaximumRetryAttempts=0)
    replaced = lam.put_function_event_invoke_config(FunctionName="sink", MaximumEventAgeInSeconds=60)
    check(replaced["MaximumRetryAttempts"] == 2, "Put replaces: a field left out is the default again")
    deleted = lam.delete_function_event_invoke_config(FunctionName="sink")
    check(deleted["ResponseMetadata"]["HTTPStatusCode"] == 204, "Delete answers 204")
    refused(lambda: lam.get_function_event_invoke_config(FunctionName="sink"), "ResourceNotFoundException", 404)
    refused(lambda: lam.delete_function_event_invoke_config(FunctionName="sink"), "ResourceNotFoundException", 404)
    check(lam.list_function_event_invoke_configs(FunctionName="sink")["FunctionEventInvokeConfigs"] == [], "List is empty without one")

    # Gust's Idempotency-Key header, added to boto3's request (and signed with it).
    keyed = client()
    keyed.meta.events.register(
        "before-sign.lambda.Invoke",
        lambda request, **_: request.headers.__setitem__("Idempotency-Key", "evt-1"),
    )
    lam.create_function(
        FunctionName="keyed", Runtime="python3.11", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": zipped(SINK)},
    )
    ids = [
        keyed.invoke(FunctionName="keyed", InvocationType="Event", Payload=b"{}")["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
        for _ in range(2)
    ]
    check(ids[0] == ids[1], "a repeated Idempotency-Key answers the first invocation's id")
    again = keyed.invoke(FunctionName="keyed", Payload=b"{}")
    check(again["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"] == ids[0], "RequestResponse with the key too")

    event = lam.invoke(FunctionName="failing", InvocationType="Event", Payload=json.dumps({"fail": True}).encode())
    check(event["StatusCode"] == 202, "an Event invocation is accepted")
    event_id = event["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    print(json.dumps({"event_id": event_id, "keyed_id": ids[0]}))


if __name__ == "__main__":
    main()
