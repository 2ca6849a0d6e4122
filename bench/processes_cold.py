"""Cold starts: creates SAMPLES new actions per kind (each its own code, so no instance is
reused) and invokes each once, blocking; prints the median and p90 of the client's time and
of the records' initTime, and how the instances started.
    python3 bench/processes_cold.py URL KEY SAMPLES STEM_CELLS"""
import base64, json, statistics, sys, time, urllib.request

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

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]

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
