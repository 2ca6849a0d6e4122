"""Drives Gust's Lambda API with boto3, unchanged but for its endpoint URL.

Run by crates/cli/tests/all/lambda_api.rs with tests/lambda/.venv/bin/python:

    boto3_flow.py auth       signatures and refusals (needs no function runtime)
    boto3_flow.py functions  create, wait, get, list, update, invoke (all three types, log tail,
                             a function error, a timeout, a failed import), a Node.js
                             handler, function URL config, delete (needs Gust's Lambda
                             runtime: kinds lambda:python3.11 and lambda:nodejs20.x)

Environment: GUST_ENDPOINT (http://127.0.0.1:port), GUST_KEY_ID (the namespace key's uuid),
GUST_SECRET (the key). Each check that fails raises; the last line printed is a JSON object
the Rust test reads.
"""

import base64
import io
import json
import os
import sys
import urllib.error
import urllib.request
import zipfile

import boto3
import botocore.config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["GUST_ENDPOINT"]
KEY_ID = os.environ["GUST_KEY_ID"]
SECRET = os.environ["GUST_SECRET"]
REGION = "us-east-1"
ARN_PREFIX = f"arn:aws:lambda:{REGION}:000000000000:function:"


def client(key_id=KEY_ID, secret=SECRET, region=REGION):
    return boto3.client(
        "lambda",
        endpoint_url=ENDPOINT,
        region_name=region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        # One attempt: a refusal must be seen as it is, and nothing is run twice.
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


def refused(call, code, status):
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


def zipped(source):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("app.py", source)
    return buf.getvalue()


APP_V1 = '''
import os

def handler(event, context):
    print("hello from the handler")
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {
        "greeting": os.environ.get("GREETING"),
        "event": event,
        "function": context.function_name,
        "version": 1,
    }
'''

APP_V2 = '''
import os

def handler(event, context):
    return {"greeting": os.environ.get("GREETING"), "version": 2}
'''


def auth():
    good = client()
    functions = good.list_functions()
    check(functions["ResponseMetadata"]["HTTPStatusCode"] == 200, "a signed ListFunctions is answered")
    before = [f["FunctionName"] for f in functions["Functions"]]

    refused(lambda: client(secret=SECRET + "x").list_functions(), "InvalidSignatureException", 403)
    refused(
        lambda: client(secret="wrong").invoke(FunctionName="any", Payload=b"{}"),
        "InvalidSignatureException",
        403,
    )
    refused(
        lambda: client(key_id="00000000-0000-0000-0000-000000000000").list_functions(),
        "UnrecognizedClientException",
        403,
    )
    e = refused(lambda: good.get_function(FunctionName="nope"), "ResourceNotFoundException", 404)
    check(
        e.response["Error"]["Message"] == f"Function not found: {ARN_PREFIX}nope",
        "a missing function is named by its ARN",
    )
    # Any region signs; the ARNs Gust answers name it.
    e = refused(lambda: client(region="eu-west-3").get_function(FunctionName="nope"), "ResourceNotFoundException", 404)
    check(
        e.response["Error"]["Message"] == "Function not found: arn:aws:lambda:eu-west-3:000000000000:function:nope",
        "another region verifies and names itself in the ARN",
    )
    # An ARN travels as %3A and is signed encoded twice: a 404, not a 403, says it verified.
    refused(lambda: good.get_function(FunctionName=ARN_PREFIX + "nope"), "ResourceNotFoundException", 404)
    refused(
        lambda: good.invoke(FunctionName=ARN_PREFIX + "nope", Payload=b"{}", LogType="Tail"),
        "ResourceNotFoundException",
        404,
    )
    code = {"ZipFile": zipped(APP_V1)}
    refused(
        lambda: good.create_function(
            FunctionName="bad-runtime", Runtime="java21", Role="arn:aws:iam::000000000000:role/r",
            Handler="app.handler", Code=code,
        ),
        "InvalidParameterValueException",
        400,
    )
    refused(
        lambda: good.create_function(
            FunctionName="too-big", Runtime="python3.11", Role="arn:aws:iam::000000000000:role/r",
            Handler="app.handler", Code=code, MemorySize=10240,
        ),
        "InvalidParameterValueException",
        400,
    )
    refused(
        lambda: good.create_function(
            FunctionName="reserved", Runtime="python3.11", Role="arn:aws:iam::000000000000:role/r",
            Handler="app.handler", Code=code, Environment={"Variables": {"AWS_REGION": "x"}},
        ),
        "InvalidParameterValueException",
        400,
    )
    after = [f["FunctionName"] for f in good.list_functions()["Functions"]]
    check(after == before, "refused requests changed nothing")
    print(json.dumps({"functions": after}))


def functions():
    lam = client()
    role = "arn:aws:iam::000000000000:role/gust-test"
    created = lam.create_function(
        FunctionName="hello",
        Runtime="python3.11",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": zipped(APP_V1)},
        Description="says hello",
        Timeout=5,
        MemorySize=128,
        Environment={"Variables": {"GREETING": "hi"}},
        Tags={"team": "gust"},
    )
    check(created["ResponseMetadata"]["HTTPStatusCode"] == 201, "CreateFunction answers 201")
    check(created["FunctionArn"] == ARN_PREFIX + "hello", "the ARN names the function")
    check(created["State"] == "Active" and created["Runtime"] == "python3.11", "the function is Active")
    check(created["CodeSize"] == len(zipped(APP_V1)), "CodeSize is the zip's size")
    refused(
        lambda: lam.create_function(
            FunctionName="hello", Runtime="python3.11", Role=role, Handler="app.handler",
            Code={"ZipFile": zipped(APP_V1)},
        ),
        "ResourceConflictException",
        409,
    )

    lam.get_waiter("function_active_v2").wait(FunctionName="hello", WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    print("ok: the function_active_v2 waiter returns", flush=True)

    got = lam.get_function(FunctionName="hello")
    conf = got["Configuration"]
    check(conf["Handler"] == "app.handler" and conf["Role"] == role, "GetFunction shows handler and role")
    check(conf["Environment"]["Variables"] == {"GREETING": "hi"}, "GetFunction shows the environment")
    check(conf["Timeout"] == 5 and conf["MemorySize"] == 128, "GetFunction shows the limits")
    check(conf["Description"] == "says hello", "GetFunction shows the description")
    check(got["Code"]["RepositoryType"] == "S3" and got["Code"]["Location"], "GetFunction has a code location")
    check(got.get("Tags") == {"team": "gust"}, "GetFunction shows the tags")
    by_arn = lam.get_function_configuration(FunctionName=ARN_PREFIX + "hello")
    check(by_arn["FunctionName"] == "hello", "a function is found by its ARN")
    check(
        lam.get_function_configuration(FunctionName="000000000000:function:hello")["FunctionName"] == "hello",
        "a function is found by a partial ARN",
    )
    refused(lambda: lam.get_function(FunctionName="hello", Qualifier="1"), "ResourceNotFoundException", 404)

    lam.create_function(
        FunctionName="second", Runtime="python3.11", Role=role, Handler="app.handler",
        Code={"ZipFile": zipped(APP_V2)},
    )
    names = sorted(f["FunctionName"] for f in lam.list_functions()["Functions"])
    check(names == ["hello", "second"], f"ListFunctions lists both functions: {names}")
    page = lam.list_functions(MaxItems=1)
    check(len(page["Functions"]) == 1 and "NextMarker" in page, "a page of one has a NextMarker")
    rest = lam.list_functions(MaxItems=1, Marker=page["NextMarker"])
    paged = sorted([page["Functions"][0]["FunctionName"], rest["Functions"][0]["FunctionName"]])
    check(paged == ["hello", "second"] and "NextMarker" not in rest, "paging lists each function once")
    by_paginator = sorted(
        f["FunctionName"]
        for p in lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 1})
        for f in p["Functions"]
    )
    check(by_paginator == ["hello", "second"], "boto3's paginator walks the pages")

    # RequestResponse, with the log's tail.
    out = lam.invoke(FunctionName="hello", Payload=json.dumps({"name": "gust"}), LogType="Tail")
    check(out["StatusCode"] == 200 and "FunctionError" not in out, "Invoke answers 200")
    check(out["ExecutedVersion"] == "$LATEST", "the executed version is $LATEST")
    payload = json.loads(out["Payload"].read())
    check(payload["greeting"] == "hi", f"the environment reached the handler: {payload}")
    check(payload["event"] == {"name": "gust"}, "the payload is the event")
    check(payload["function"] == "hello", "the context names the function")
    log = base64.b64decode(out["LogResult"]).decode()
    check("hello from the handler" in log, f"the log tail holds what the handler printed: {log!r}")
    check("END RequestId:" in log and len(log.encode()) <= 4096, "the log tail is Lambda's, at most 4 KB")
    request_id = out["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]

    # Event and DryRun.
    event = lam.invoke(FunctionName="hello", InvocationType="Event", Payload=b'{"async": true}')
    check(event["StatusCode"] == 202 and event["Payload"].read() == b"", "an Event invoke answers 202, empty")
    event_id = event["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    dry = lam.invoke(FunctionName=ARN_PREFIX + "hello", InvocationType="DryRun")
    check(dry["StatusCode"] == 204, "a DryRun answers 204")
    refused(lambda: lam.invoke(FunctionName="absent", InvocationType="DryRun"), "ResourceNotFoundException", 404)

    # A function error: 200, Unhandled, the runtime's error body.
    failed = lam.invoke(FunctionName="hello", Payload=b'{"fail": true}')
    check(failed["StatusCode"] == 200 and failed.get("FunctionError") == "Unhandled", "a function error is 200 + Unhandled")
    err = json.loads(failed["Payload"].read())
    check(err.get("errorType") == "ValueError" and err.get("errorMessage") == "asked to fail", f"the error body is the runtime's: {err}")

    # A Node.js handler, through the same API.
    node_app = io.BytesIO()
    with zipfile.ZipFile(node_app, "w") as z:
        z.writestr(
            "index.js",
            "exports.handler = async (event, context) => {\n"
            "  if (event.fail) { throw new TypeError('node failed'); }\n"
            "  return { runtime: 'node', name: event.name, fn: context.functionName };\n"
            "};\n",
        )
    lam.create_function(
        FunctionName="node-fn", Runtime="nodejs20.x", Role=role, Handler="index.handler",
        Code={"ZipFile": node_app.getvalue()},
    )
    out = json.loads(lam.invoke(FunctionName="node-fn", Payload=b'{"name": "ada"}')["Payload"].read())
    check(out == {"runtime": "node", "name": "ada", "fn": "node-fn"}, f"a Node.js handler answers: {out}")
    failed = lam.invoke(FunctionName="node-fn", Payload=b'{"fail": true}')
    err = json.loads(failed["Payload"].read())
    check(failed.get("FunctionError") == "Unhandled" and err.get("errorType") == "TypeError" and err.get("errorMessage") == "node failed", f"a Node.js error is the runtime's body: {err}")
    lam.delete_function(FunctionName="node-fn")

    # Runs that fail on their own: a timeout, a handler that cannot load.
    lam.create_function(
        FunctionName="slow", Runtime="python3.11", Role=role, Handler="app.handler", Timeout=1,
        Code={"ZipFile": zipped("import time\n\ndef handler(event, context):\n    time.sleep(5)\n")},
    )
    slow = lam.invoke(FunctionName="slow", Payload=b"{}")
    err = json.loads(slow["Payload"].read())
    check(slow["StatusCode"] == 200 and slow.get("FunctionError") == "Unhandled", "a timeout is 200 + Unhandled")
    check(err.get("errorType") == "Sandbox.Timedout" and "Task timed out after 1.00 seconds" in err.get("errorMessage", ""), f"a timeout is Sandbox.Timedout: {err}")
    lam.create_function(
        FunctionName="broken", Runtime="python3.11", Role=role, Handler="app.handler",
        Code={"ZipFile": zipped("import no_such_module\n")},
    )
    broken = lam.invoke(FunctionName="broken", Payload=b"{}")
    err = json.loads(broken["Payload"].read())
    check(broken["StatusCode"] == 200 and broken.get("FunctionError") == "Unhandled", "a failed init is 200 + Unhandled")
    check(err.get("errorType") == "Runtime.ImportModuleError" and "no_such_module" in err.get("errorMessage", ""), f"a failed import is Runtime.ImportModuleError: {err}")
    lam.delete_function(FunctionName="slow")
    lam.delete_function(FunctionName="broken")

    # Payloads Gust does not take.
    refused(lambda: lam.invoke(FunctionName="hello", Payload=b"[1, 2]"), "InvalidRequestContentException", 400)
    refused(lambda: lam.invoke(FunctionName="hello", Payload=b"{not json"), "InvalidRequestContentException", 400)
    refused(lambda: lam.invoke(FunctionName="hello", Payload=b"{}", Qualifier="2"), "ResourceNotFoundException", 404)
    refused(
        lambda: lam.invoke(FunctionName="hello", Payload=json.dumps({"x": "y" * (1536 * 1024)})),
        "RequestTooLargeException",
        413,
    )

    # Updates.
    revision = lam.get_function_configuration(FunctionName="hello")["RevisionId"]
    refused(
        lambda: lam.update_function_code(FunctionName="hello", ZipFile=zipped(APP_V2), RevisionId="stale"),
        "PreconditionFailedException",
        412,
    )
    updated = lam.update_function_code(FunctionName="hello", ZipFile=zipped(APP_V2), RevisionId=revision)
    check(updated["RevisionId"] != revision and updated["LastUpdateStatus"] == "Successful", "UpdateFunctionCode gives a new revision")
    lam.get_waiter("function_updated_v2").wait(FunctionName="hello", WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    out = json.loads(lam.invoke(FunctionName="hello", Payload=b"{}")["Payload"].read())
    check(out == {"greeting": "hi", "version": 2}, f"the new code runs: {out}")
    conf = lam.update_function_configuration(
        FunctionName="hello", Environment={"Variables": {"GREETING": "hello"}}, Timeout=10, Description="v2",
    )
    check(conf["Timeout"] == 10 and conf["Environment"]["Variables"] == {"GREETING": "hello"}, "UpdateFunctionConfiguration answers the new configuration")
    out = json.loads(lam.invoke(FunctionName="hello", Payload=b"{}")["Payload"].read())
    check(out["greeting"] == "hello", f"the new environment reaches the handler: {out}")

    # A new handler goes with the code already there.
    moved = lam.update_function_configuration(FunctionName="second", Handler="app.missing")
    check(moved["Handler"] == "app.missing" and moved["CodeSha256"] == lam.get_function(FunctionName="second")["Configuration"]["CodeSha256"], "UpdateFunctionConfiguration changes the handler and keeps the code")
    missing = lam.invoke(FunctionName="second", Payload=b"{}")
    err = json.loads(missing["Payload"].read())
    check(missing.get("FunctionError") == "Unhandled" and err.get("errorType") == "Runtime.HandlerNotFound", f"a handler that is not there is Runtime.HandlerNotFound: {err}")
    lam.update_function_configuration(FunctionName="second", Handler="app.handler")
    out = json.loads(lam.invoke(FunctionName="second", Payload=b"{}")["Payload"].read())
    check(out["version"] == 2, f"the handler back, the function runs: {out}")

    # Function URL configuration.
    url = lam.create_function_url_config(FunctionName="hello", AuthType="NONE")
    check(url["ResponseMetadata"]["HTTPStatusCode"] == 201, "CreateFunctionUrlConfig answers 201")
    check(url["FunctionUrl"].endswith("/api/v1/web/guest/default/hello/"), f"the URL is the web action's: {url['FunctionUrl']}")
    refused(lambda: lam.create_function_url_config(FunctionName="hello", AuthType="NONE"), "ResourceConflictException", 409)
    refused(lambda: lam.create_function_url_config(FunctionName="second", AuthType="AWS_IAM"), "InvalidParameterValueException", 400)
    refused(lambda: lam.create_function_url_config(FunctionName="second", AuthType="NONE", Cors={"AllowOrigins": ["*"]}), "InvalidParameterValueException", 400)
    check(lam.get_function_url_config(FunctionName="hello")["AuthType"] == "NONE", "GetFunctionUrlConfig reads it back")
    # The URL serves the function to anyone, unsigned (payload format 2.0 in, the response out).
    with urllib.request.urlopen(url["FunctionUrl"] + "?q=1") as r:
        served = json.loads(r.read())
    check(r.status == 200 and served == {"greeting": "hello", "version": 2}, f"the function URL serves the function: {served}")
    lam.delete_function_url_config(FunctionName="hello")
    refused(lambda: lam.get_function_url_config(FunctionName="hello"), "ResourceNotFoundException", 404)
    try:
        urllib.request.urlopen(url["FunctionUrl"])
        raise AssertionError("the URL still serves the function after DeleteFunctionUrlConfig")
    except urllib.error.HTTPError as e:
        check(e.code == 404, "without its URL config the function is no longer served")

    # Delete.
    deleted = lam.delete_function(FunctionName="hello")
    check(deleted["ResponseMetadata"]["HTTPStatusCode"] == 204, "DeleteFunction answers 204")
    refused(lambda: lam.get_function(FunctionName="hello"), "ResourceNotFoundException", 404)
    refused(lambda: lam.invoke(FunctionName="hello", Payload=b"{}"), "ResourceNotFoundException", 404)
    print(json.dumps({"request_id": request_id, "event_id": event_id}))


if __name__ == "__main__":
    {"auth": auth, "functions": functions}[sys.argv[1]]()
