"""Lambda functions on Gust (issue 26), helpers for bench/lambda.sh.
    lambda_bench.py setup URL KEY          creates the functions and their OpenWhisk twins
    lambda_bench.py sign URL KEY FUNCTION  prints SIGV4_AUTHORIZATION=... SIGV4_DATE=... for one
                                           Invoke of FUNCTION with the body wrk sends
    lambda_bench.py cold URL KEY SAMPLES   cold starts: SAMPLES new functions per kind, each
                                           invoked once (Lambda handlers beside OpenWhisk actions)
Signing uses botocore from tests/lambda/.venv (run this script with that interpreter)."""
import base64, io, json, statistics, sys, time, urllib.request, zipfile

PY_APP = "def handler(event, context):\n    return {'greeting': 'Hello ' + event.get('name', 'world')}\n"
JS_APP = "exports.handler = async (event) => ({ greeting: 'Hello ' + (event.name || 'world') });\n"
OW_PY = "def main(a):\n    return {'greeting': 'Hello ' + a.get('name', 'world')}\n"
OW_JS = "function main(p) { return { greeting: 'Hello ' + (p.name || 'world') }; }"
BODY = b'{"name":"bench"}'


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def zipped(name, text):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, text)
    return base64.b64encode(buf.getvalue()).decode()


def put(url, key, name, exec_):
    auth = "Basic " + base64.b64encode(key.encode()).decode()
    req = urllib.request.Request(f"{url}/api/v1/namespaces/_/actions/{name}?overwrite=true",
                                 data=json.dumps({"exec": exec_}).encode(), method="PUT",
                                 headers={"Authorization": auth, "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()


def invoke(url, key, name):
    auth = "Basic " + base64.b64encode(key.encode()).decode()
    req = urllib.request.Request(f"{url}/api/v1/namespaces/_/actions/{name}?blocking=true",
                                 data=BODY, method="POST",
                                 headers={"Authorization": auth, "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def functions(i):
    return {
        "lambda-python": {"kind": "lambda:python3.11", "main": "app.handler", "binary": True,
                          "code": zipped("app.py", PY_APP + f"# {i}\n")},
        "lambda-nodejs": {"kind": "lambda:nodejs20.x", "main": "index.handler", "binary": True,
                          "code": zipped("index.js", JS_APP + f"// {i}\n")},
        "ow-python": {"kind": "python:default", "code": OW_PY + f"# {i}\n"},
        "ow-nodejs": {"kind": "nodejs:default", "code": OW_JS + f"// {i}\n"},
    }


cmd, url, key = sys.argv[1], sys.argv[2], sys.argv[3]
if cmd == "setup":
    for name, exec_ in functions("warm").items():
        put(url, key, name, exec_)
elif cmd == "sign":
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    uuid, secret = key.split(":", 1)
    req = AWSRequest(method="POST", url=f"{url}/2015-03-31/functions/{sys.argv[4]}/invocations", data=BODY)
    SigV4Auth(Credentials(uuid, secret), "lambda", "us-east-1").add_auth(req)
    print(f"SIGV4_AUTHORIZATION='{req.headers['Authorization']}' SIGV4_DATE='{req.headers['X-Amz-Date']}'")
elif cmd == "cold":
    samples = int(sys.argv[4])
    for kind in functions(0):
        wall, init = [], []
        for i in range(samples):
            name = f"cold-{kind}-{i}"
            put(url, key, name, functions(i)[kind])
            t = time.perf_counter()
            rec = invoke(url, key, name)
            wall.append((time.perf_counter() - t) * 1000)
            ann = {a["key"]: a["value"] for a in rec["annotations"]}
            init.append(ann.get("initTime", 0))
            assert rec["response"]["result"] == {"greeting": "Hello bench"}, rec
        print(f"RESULT cold={kind} client_p50_ms={statistics.median(wall):.1f} "
              f"client_p90_ms={pct(wall, 0.9):.1f} initTime_p50_ms={statistics.median(init):.0f}")
