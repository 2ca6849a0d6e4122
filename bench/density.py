"""Helpers of bench/density.sh.
    density.py create URL KEY KIND N HELLO_WASM   N actions d0.. of KIND, each its own code
                                                  (Wasm: the same module, so one compiled copy
                                                  unless WASM_DISTINCT=1 adds a custom section)
    density.py warm URL KEY N                     invokes each once (16 at a time)
    density.py memory SERVER_PID                  idle instances per GiB (cgroup charges)
    density.py native URL KEY SAMPLES             cold starts of new native actions"""
import base64, concurrent.futures as cf, glob, json, os, statistics, sys, time, urllib.request


def call(url, key, method, path, body=None):
    req = urllib.request.Request(url + path, method=method, data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Authorization", "Basic " + base64.b64encode(key.encode()).decode())
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"null")


def leb(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def exec_of(kind, i, hello):
    if kind == "wasm":
        code = hello
        if os.environ.get("WASM_DISTINCT"):
            name, payload = b"gust-bench", str(i).encode()
            body = leb(len(name)) + name + payload
            code = hello + b"\x00" + leb(len(body)) + body
        return {"kind": "wasm", "code": base64.b64encode(code).decode()}
    if kind == "node":
        return {"kind": "nodejs:default", "code": "// %d\nfunction main(p) { return { greeting: 'Hello ' + (p.name || 'world') }; }" % i}
    if kind == "python":
        return {"kind": "python:default", "code": "# %d\ndef main(a):\n    return {'greeting': 'Hello ' + a.get('name', 'world')}\n" % i}
    raise SystemExit("unknown kind " + kind)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


cmd = sys.argv[1]
if cmd == "create":
    url, key, kind, n = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    hello = open(sys.argv[6], "rb").read() if kind == "wasm" else b""
    t = time.time()
    with cf.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: call(url, key, "PUT", "/api/v1/namespaces/_/actions/d%d?overwrite=true" % i,
                                     {"exec": exec_of(kind, i, hello)}), range(n)))
    print("created %d %s actions in %.1f s" % (n, kind, time.time() - t))
elif cmd == "warm":
    url, key, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
    t = time.time()
    with cf.ThreadPoolExecutor(16) as pool:
        res = list(pool.map(lambda i: call(url, key, "POST", "/api/v1/namespaces/_/actions/d%d?blocking=true" % i, {}), range(n)))
    starts = {}
    for r in res:
        s = next((a["value"] for a in r.get("annotations", []) if a["key"] == "start"), "-")
        starts[s] = starts.get(s, 0) + 1
    print("warm-up: %d invocations in %.1f s, starts %s" % (n, time.time() - t, starts))
elif cmd == "memory":
    pid = sys.argv[2]
    groups = glob.glob("/sys/fs/cgroup/memory/gust/srv-%s/i*" % pid) or glob.glob("/sys/fs/cgroup/gust/srv-%s/i*" % pid)
    used = []
    for g in groups:
        for f in ("memory.usage_in_bytes", "memory.current"):
            p = os.path.join(g, f)
            if os.path.exists(p):
                used.append(int(open(p).read()))
    if used:
        avg = sum(used) / len(used)
        print("instances: %d, %.1f MiB each on average, %.0f per GiB, %.0f MiB in all"
              % (len(used), avg / 2**20, 2**30 / avg, sum(used) / 2**20))
elif cmd == "native":
    url, key, samples = sys.argv[2], sys.argv[3], int(sys.argv[4])
    # A shell script is a native executable as far as the sandbox goes: it speaks the loop.
    client, init = [], []
    for i in range(samples):
        script = "#!/bin/sh\n# %d\nwhile read -r line; do echo '{\"n\": 1}' >&3; done\n" % i
        name = "nat%d_%d" % (int(time.time()), i)
        call(url, key, "PUT", "/api/v1/namespaces/_/actions/%s" % name,
             {"exec": {"kind": "native", "code": base64.b64encode(script.encode()).decode(), "binary": True}})
        t = time.perf_counter()
        r = call(url, key, "POST", "/api/v1/namespaces/_/actions/%s?blocking=true" % name, {})
        client.append((time.perf_counter() - t) * 1000)
        init.append(next((a["value"] for a in r.get("annotations", []) if a["key"] == "initTime"), 0))
    print("native cold start: client p50 %.1f ms p90 %.1f ms, initTime p50 %s ms"
          % (statistics.median(client), pct(client, 0.9), statistics.median(init)))
