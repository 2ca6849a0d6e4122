"""Cold starts: creates SAMPLES new actions per kind (each its own code, so no instance is
reused) and invokes each once, blocking; prints the median and p90 of the client's time and
of the records' initTime, and how the instances started.
    python3 bench/processes_cold.py URL KEY SAMPLES STEM_CELLS
The bare baseline: Gust's launcher run directly by the same interpreter (no sandbox, no
server, no HTTP), from exec to the first answer on fd 3:
    python3 bench/processes_cold.py bare SAMPLES"""
import base64, json, os, statistics, subprocess, sys, time, urllib.request

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]

if sys.argv[1] == "bare":
    samples = int(sys.argv[2])
    here = os.path.dirname(os.path.abspath(__file__))
    launchers = os.path.join(here, "..", "crates", "runtime-process", "src", "launcher")
    bare = {
        "nodejs": (["/usr/bin/node", "-e"], "launcher.js", "function main(p) { return { n: 1 }; }"),
        "python": (["/usr/bin/python3", "-I", "-c"], "launcher.py", "def main(a):\n    return {'n': 1}\n"),
    }
    # The environment a sandboxed instance gets (a host's NODE_EXTRA_CA_CERTS alone costs
    # Node.js tens of milliseconds at start).
    SANDBOX_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
                   "UV_USE_IO_URING": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    for family, (argv, launcher, code) in bare.items():
        source = open(os.path.join(launchers, launcher)).read()
        times = []
        for _ in range(samples):
            # fd 3 is the answer pipe (our stdout end); `sh -c exec` keeps the spawn a
            # vfork + exec, as cheap as Gust's clone.
            t = time.perf_counter()
            p = subprocess.Popen(["/bin/sh", "-c", 'exec "$0" "$@" 3>&1 1>/dev/null'] + argv + [source],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, env=SANDBOX_ENV)
            lines = json.dumps({"code": code, "main": "main", "env": {}}) + "\n" + \
                json.dumps({"value": {}, "env": {}}) + "\n"
            p.stdin.write(lines.encode())
            p.stdin.flush()
            p.stdout.readline()
            assert json.loads(p.stdout.readline()) == {"n": 1}
            times.append((time.perf_counter() - t) * 1000)
            p.kill()
            p.wait()
        print(f"RESULT bare={family} exec_to_first_answer_p50_ms={statistics.median(times):.1f} "
              f"p90_ms={pct(times, 0.9):.1f}")
    sys.exit(0)

url, key, samples, stems = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
auth = "Basic " + base64.b64encode(key.encode()).decode()
api = url + "/api/v1/namespaces/_/actions/"
CODE = {
    "nodejs:default": "function main(p) {{ return {{ n: {i} }}; }}",
    "python:default": "def main(a):\n    return {{'n': {i}}}\n",
}

def call(method, path, body):
    req = urllib.request.Request(api + path, data=json.dumps(body).encode(), method=method,
                                 headers={"Authorization": auth, "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)

for kind, code in CODE.items():
    wall, init, starts = [], [], {}
    for i in range(samples):
        name = f"cold-{kind.split(':')[0]}-{stems}-{i}"
        call("PUT", name + "?overwrite=true", {"exec": {"kind": kind, "code": code.format(i=i)}})
        if stems:
            time.sleep(0.3)  # let the pool replace the stem cell the last one took
        t = time.perf_counter()
        rec = call("POST", name + "?blocking=true", {})
        wall.append((time.perf_counter() - t) * 1000)
        ann = {a["key"]: a["value"] for a in rec["annotations"]}
        init.append(ann.get("initTime", 0))
        starts[ann.get("start")] = starts.get(ann.get("start"), 0) + 1
        assert rec["response"]["result"] == {"n": i}, rec
    print(f"RESULT kind={kind} stem_cells={stems} client_p50_ms={statistics.median(wall):.1f} "
          f"client_p90_ms={pct(wall, 0.9):.1f} initTime_p50_ms={statistics.median(init):.0f} "
          f"initTime_p90_ms={pct(init, 0.9):.0f} starts={starts}")
