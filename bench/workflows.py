"""Durable workflows under load (issue 25), the driver of bench/workflows.sh.
    workflows.py setup URL KEY HELLO_WASM      creates the hello action and the workflows below
    workflows.py load URL KEY WORKFLOW N CLIENTS
        N executions of WORKFLOW, each a blocking start (`?blocking=true`), from CLIENTS
        clients at once: wall time, executions/s, state transitions/s, latency per execution
    workflows.py seq URL KEY TARGET N
        N requests one after another on one connection, TARGET `invoke` (a blocking invoke of
        hello) or a workflow's name (a blocking start): median, p90 and p99 of each
Every answer is checked (status 200, the execution SUCCEEDED with the output it must have);
one that is not counts as an error and is printed. Connections are kept alive (http.client),
so the client's own cost is the same for every line of a run."""
import base64, http.client, json, statistics, sys, threading, time, urllib.parse

HELLO = {"Type": "Task", "Resource": "hello"}
ITEMS = [f"i{i}" for i in range(100)]


def chain(n, state):
    """A chain of n copies of `state`, S0 -> S1 -> ... -> S(n-1)."""
    states = {}
    for i in range(n):
        s = dict(state)
        if i + 1 < n:
            s["Next"] = f"S{i + 1}"
        else:
            s["End"] = True
        states[f"S{i}"] = s
    return {"StartAt": "S0", "States": states}


def fan(concurrency):
    return {"StartAt": "Each", "States": {"Each": {
        "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": concurrency, "End": True,
        "ItemSelector": {"name.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"StartAt": "H", "States": {"H": dict(HELLO, End=True)}}}}}


def greeting_of(name):
    return {"greeting": f"Hello, {name}!"}


# name -> (definition, input, expected output, state transitions per execution: states
# entered, as Step Functions counts them; a Map's iterations count their own states)
WORKFLOWS = {
    "pass100": (chain(100, {"Type": "Pass"}), {"name": "bench"}, {"name": "bench"}, 100),
    # hello's output ({"greeting": ...}) is the next step's input: no name, "World".
    "task10": (chain(10, HELLO), {"name": "bench"}, greeting_of("World"), 10),
    "task1": (chain(1, HELLO), {"name": "bench"}, greeting_of("bench"), 1),
    "map100": (fan(0), {"items": ITEMS}, [greeting_of(i) for i in ITEMS], 101),
    "map100c10": (fan(10), {"items": ITEMS}, [greeting_of(i) for i in ITEMS], 101),
}


class Client:
    """One kept-alive connection with the namespace's key."""

    def __init__(self, url, key):
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        self.headers = {"Authorization": "Basic " + base64.b64encode(key.encode()).decode(),
                        "Content-Type": "application/json"}

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        self.conn.request(method, path, body=data, headers=self.headers)
        r = self.conn.getresponse()
        raw = r.read()
        return r.status, (json.loads(raw) if raw else None)


API = "/api/v1/namespaces/_"


def request_of(target):
    """The request of one unit of work and the check of its answer."""
    if target == "invoke":
        want = greeting_of("bench")
        return ("POST", f"{API}/actions/hello?blocking=true&result=true", {"name": "bench"},
                lambda status, body: status == 200 and body == want)
    _, input_, want, _ = WORKFLOWS[target]
    return ("POST", f"{API}/workflows/{target}/executions?blocking=true", {"input": input_},
            lambda status, body: status == 200 and body.get("status") == "SUCCEEDED"
            and body.get("output") == want)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round((len(xs) - 1) * p))]


def setup(url, key, wasm):
    c = Client(url, key)
    code = base64.b64encode(open(wasm, "rb").read()).decode()
    status, body = c.call("PUT", f"{API}/actions/hello?overwrite=true",
                          {"exec": {"kind": "wasm", "code": code}})
    assert status == 200, (status, body)
    for name, (definition, *_rest) in WORKFLOWS.items():
        status, body = c.call("PUT", f"{API}/workflows/{name}?overwrite=true",
                              {"definition": definition})
        assert status == 200, (name, status, body)
    # One of each, checked, also warms the code cache and the definitions.
    for target in ["invoke", *WORKFLOWS]:
        method, path, body, ok = request_of(target)
        status, answer = c.call(method, path, body)
        assert ok(status, answer), (target, status, answer)


def run(url, key, target, n, clients):
    method, path, body, ok = request_of(target)
    latencies, errors = [], []
    lock = threading.Lock()
    left = [n]
    go = threading.Barrier(clients + 1)

    def worker():
        c = Client(url, key)
        go.wait()
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            t = time.perf_counter()
            try:
                status, answer = c.call(method, path, body)
            except Exception as e:  # noqa: BLE001 (reported, not hidden)
                status, answer = None, repr(e)
                c = Client(url, key)
            ms = (time.perf_counter() - t) * 1000
            with lock:
                if ok(status, answer):
                    latencies.append(ms)
                else:
                    errors.append((status, str(answer)[:300]))

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for th in threads:
        th.start()
    go.wait()
    t0 = time.perf_counter()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    for e in errors[:3]:
        print("  error:", e)
    return latencies, errors, wall


def main():
    cmd, url, key = sys.argv[1], sys.argv[2], sys.argv[3]
    if cmd == "setup":
        setup(url, key, sys.argv[4])
    elif cmd == "load":
        wf, n, clients = sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
        lat, errors, wall = run(url, key, wf, n, clients)
        per = WORKFLOWS[wf][3]
        done = len(lat)
        print(f"RESULT {wf}: executions={done} errors={len(errors)} clients={clients} "
              f"wall_s={wall:.2f} executions/s={done / wall:.1f} "
              f"transitions/s={done * per / wall:.0f} (x{per}) "
              f"latency_p50_ms={pct(lat, 0.5):.2f} p90_ms={pct(lat, 0.9):.2f}")
    elif cmd == "seq":
        target, n = sys.argv[4], int(sys.argv[5])
        lat, errors, wall = run(url, key, target, n, 1)
        print(f"RESULT {target}: requests={len(lat)} errors={len(errors)} "
              f"p50_ms={statistics.median(lat):.3f} p90_ms={pct(lat, 0.9):.3f} "
              f"p99_ms={pct(lat, 0.99):.3f} mean_ms={statistics.fmean(lat):.3f}")
    else:
        sys.exit(f"unknown command {cmd}")


main()
