#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The differential tier: mcpfence's view of hostile bytes against what real servers' parsers do
with them.

    tests/diff/run.py [--fuzz-only] [--class C]... [-v]     (make diff; DIFF_VIEW=build/tests/diff/view)

Cases: the generated corpus (tests/diff/gen.py), the hand-written ones (tests/diff/cases/
CLASS.NAME.stdio|http, raw bytes), every tests/data/messages/*.json (as a stdio line and as a POST
body), and when present the libFuzzer corpora build/fuzz/corpus (both ways) and
build/fuzz/head-corpus (raw HTTP). mcpfence's view comes from build/tests/diff/view (the gateway,
the scanner on stdio lines, the TCP kernel plane). The decoders are the servers' own parsers, run
as helper processes: Go's encoding/json as mcp-go reads (tests/diff/mcpgo, built here with
Debian's go), the real Node SDK over stdio and Streamable HTTP, express.json() (body-parser), the
SDK's SSE transport, and Python's json as the Python SDK is fed.

For each case, view and decoder, three checks; any failure fails the case:
  reads     when the view refused nothing: every tools/call the decoder reads in the case's bytes
            is one the view decided (same tool, as many times)
  allowed   on the bytes the plane lets through when it allows every call it decided: the
            decoder runs only calls the view decided
  denied    on the bytes the plane lets through when it denies every call: the decoder runs none
A test is one decoder on one class of the corpus; a decoder that cannot run skips its tests with
the reason (with CI=true it fails them); one that fails, or does not read the plain calls of class
"basic" as they are, fails them. Appends "diff PASSED FAILED SKIPPED DECODERS" to $RESULTS.
"""
import base64
import collections
import json
import os
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, "build")
sys.path.insert(0, HERE)
import gen  # noqa: E402

# A view's name, and the planes of the cases it is compared on.
VIEWS = {"stdio": ("gateway", "kstdio"), "http": ("kernel",)}


def log(*a):
    print(*a, flush=True)


def file_cases(fuzz_only, fuzz_max, only):
    cases = []
    if not fuzz_only:
        d = os.path.join(HERE, "cases")
        for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            parts = f.split(".")
            if len(parts) != 3 or parts[2] not in ("stdio", "http"):
                continue
            with open(os.path.join(d, f), "rb") as fh:
                cases.append({"id": "%s/%s/%s" % tuple(parts), "class": parts[0],
                              "plane": parts[2], "data": fh.read()})
        d = os.path.join(ROOT, "tests/data/messages")
        for f in sorted(os.listdir(d)):
            if f.endswith(".json"):
                with open(os.path.join(d, f), "rb") as fh:
                    body = fh.read()
                name = f[:-5]
                cases.append({"id": "messages/%s/stdio" % name, "class": "messages",
                              "plane": "stdio", "data": body + b"\n"})
                cases.append({"id": "messages/%s/http" % name, "class": "messages",
                              "plane": "http", "data": gen.post(body)})
    for sub, cls in (("corpus", "fuzz"), ("head-corpus", "fuzz-head")):
        d = os.path.join(BUILD, "fuzz", sub)
        if not os.path.isdir(d) or (only and cls not in only):
            continue
        names = sorted(os.listdir(d))
        if fuzz_max is not None and len(names) > fuzz_max:
            log("diff: %d of the %d inputs of build/fuzz/%s (DIFF_FUZZ_MAX; make fuzz replays "
                "them all)" % (fuzz_max, len(names), sub))
            names = names[:fuzz_max]
        for f in names:
            with open(os.path.join(d, f), "rb") as fh:
                data = fh.read()
            if cls == "fuzz":
                cases.append({"id": "fuzz/%s/stdio" % f, "class": cls, "plane": "stdio",
                              "data": data + b"\n"})
                cases.append({"id": "fuzz/%s/http" % f, "class": cls, "plane": "http",
                              "data": gen.post(data)})
            else:
                cases.append({"id": "fuzz-head/%s/http" % f, "class": cls, "plane": "http",
                              "data": data})
    return cases


def build_go(out):
    """The mcp-go decoder, built from tests/diff/mcpgo; None and why when it cannot be."""
    go = shutil.which("go")
    if not go:
        return None, "go is not installed (scripts/setup.sh test installs golang-go)"
    src = os.path.join(HERE, "mcpgo")
    env = dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off", GO111MODULE="on",
               GOCACHE=os.path.join(BUILD, "go-cache"), GOPATH=os.path.join(BUILD, "go-path"),
               GOTOOLCHAIN="local")
    r = subprocess.run([go, "build", "-o", out, "."], cwd=src, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode:
        return None, "go build failed:\n" + r.stdout.decode(errors="replace")
    return [out, "diff"], None


def decoders():
    """(name, command or None, planes, why not)"""
    out = []
    mcpgo = os.path.join(BUILD, "tests/diff/mcpgo")
    cmd, why = build_go(mcpgo)
    out.append(("go", cmd, ("stdio", "http"), why))
    node = shutil.which("node")
    nm = os.path.join(ROOT, "tests/e2e/node_modules")
    why = None
    if not node:
        why = "node is not installed (scripts/setup.sh test installs it)"
    else:
        for pkg in ("@modelcontextprotocol/sdk", "express", "body-parser"):
            if not os.path.isdir(os.path.join(nm, pkg)):
                why = "tests/e2e/node_modules/%s is missing (make setup-test)" % pkg
                break
    script = os.path.join(HERE, "node_ref.mjs")
    for name, dec, planes in (("node-sdk", "sdk", ("stdio", "http")),
                              ("express", "express", ("http",)), ("sse", "sse", ("http",))):
        out.append((name, None if why else [node, script, dec], planes, why))
    py = "/usr/bin/python3"
    if os.access(py, os.X_OK):
        out.append(("python", [py, os.path.join(HERE, "py_ref.py")], ("stdio", "http"), None))
    else:
        out.append(("python", None, ("stdio", "http"),
                    "/usr/bin/python3 is missing (scripts/setup.sh test installs python3)"))
    return out


def jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def b64(data):
    return base64.b64encode(data).decode()


def excess(seen, decided):
    """The calls in seen beyond those in decided (multisets)."""
    return sorted((collections.Counter(seen) - collections.Counter(decided)).elements())


def show(data, limit=600):
    s = repr(bytes(data))
    return s if len(s) <= limit else s[:limit] + "... (%d bytes)" % len(data)


def main():
    args = sys.argv[1:]
    verbose = "-v" in args
    fuzz_only = "--fuzz-only" in args
    only = [args[i + 1] for i, a in enumerate(args) if a == "--class" and i + 1 < len(args)]
    results = os.environ.get("RESULTS")
    ci = os.environ.get("CI") == "true"
    view_bin = os.environ.get("DIFF_VIEW", os.path.join(BUILD, "tests/diff/view"))
    work = os.path.join(BUILD, "diff")
    os.makedirs(work, exist_ok=True)
    t0 = time.monotonic()

    # libFuzzer names its inputs by their SHA-1: the first ones in name order are a fair sample
    fuzz_max = None if fuzz_only else int(os.environ.get("DIFF_FUZZ_MAX", "500"))
    cases = ([] if fuzz_only else gen.generate()) + file_cases(fuzz_only, fuzz_max, only)
    if only:
        cases = [c for c in cases if c["class"] in only]
    if not cases:
        log("diff: no cases (--fuzz-only without build/fuzz corpora: run make fuzz first)")
        if results:
            with open(results, "a") as f:
                f.write("diff 0 0 1 0\n")
        return 0
    counts = collections.Counter(c["class"] for c in cases)
    log("diff: %d cases: %s" % (len(cases), ", ".join("%s %d" % kv for kv in sorted(counts.items()))))

    # mcpfence's view
    if not os.access(view_bin, os.X_OK):
        log("diff: FAILED: %s is not built (make diff builds it)" % view_bin)
        if results:
            with open(results, "a") as f:
                f.write("diff 0 1 0 0\n")
        return 1
    jsonl(os.path.join(work, "cases.jsonl"),
          ({"id": c["id"], "plane": c["plane"], "data": b64(c["data"])} for c in cases))
    with open(os.path.join(work, "cases.jsonl")) as fin, \
            open(os.path.join(work, "views.jsonl"), "w") as fout:
        r = subprocess.run([view_bin], stdin=fin, stdout=fout)
    if r.returncode:
        log("diff: FAILED: %s exited %d" % (view_bin, r.returncode))
        if results:
            with open(results, "a") as f:
                f.write("diff 0 1 0 0\n")
        return 1
    views = {v["id"]: v["views"] for v in read_jsonl(os.path.join(work, "views.jsonl"))}
    t_view = time.monotonic() - t0

    # the inputs each decoder reads: each case's bytes, and what each plane lets through
    inputs, by_key = [], {}

    def input_for(plane, data):
        key = (plane, data)
        if key not in by_key:
            by_key[key] = len(inputs)
            inputs.append({"id": len(inputs), "plane": plane, "data": b64(data)})
        return by_key[key]

    refs = {}
    for c in cases:
        v = views[c["id"]]
        r = {"orig": input_for(c["plane"], c["data"])}
        for vn, vv in v.items():
            for k in ("pass", "pass_deny"):
                if k in vv:
                    r[(vn, k)] = input_for(c["plane"], base64.b64decode(vv[k]))
        refs[c["id"]] = r

    # the decoders, side by side
    decs = decoders()
    procs, seen, dtime, broken = {}, {}, {}, {}
    for name, cmd, planes, why in decs:
        if not cmd:
            continue
        path = os.path.join(work, "in-%s.jsonl" % name)
        jsonl(path, (i for i in inputs if i["plane"] in planes))
        fin = open(path)
        fout = open(os.path.join(work, "seen-%s.jsonl" % name), "w")
        ferr = open(os.path.join(work, "stderr-%s.txt" % name), "w")
        procs[name] = (subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=ferr), fin, fout,
                       ferr, time.monotonic())
    def wait(name, p, start):
        try:
            rc = p.wait(timeout=600)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = "timed out"
        dtime[name] = (time.monotonic() - start, rc)

    threads = [threading.Thread(target=wait, args=(n, v[0], v[4])) for n, v in procs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, (p, fin, fout, ferr, start) in procs.items():
        for f in (fin, fout, ferr):
            f.close()
        rc = dtime[name][1]
        dtime[name] = dtime[name][0]
        if rc != 0:
            with open(os.path.join(work, "stderr-%s.txt" % name)) as f:
                broken[name] = "exited %s: %s" % (rc, f.read()[-2000:])
            continue
        seen[name] = {s["id"]: s["calls"] for s in read_jsonl(os.path.join(work, "seen-%s.jsonl" % name))}

    # a decoder that does not read the plain calls proves nothing: it is broken
    for name, cmd, planes, why in decs:
        if name not in seen:
            continue
        for c in cases:
            want = {"basic/denied/": [gen.DENIED], "basic/allowed/": [gen.ALLOWED]}.get(
                c["id"][:-len(c["plane"])])
            if want is not None and c["plane"] in planes and seen[name].get(refs[c["id"]]["orig"]) != want:
                broken[name] = "reads %s in %s, not %s: it proves nothing" % (
                    seen[name].get(refs[c["id"]]["orig"]), c["id"], want)

    # compare, one test per (decoder, class)
    passed = failed = skipped = 0
    failures = []
    for name, cmd, planes, why in decs:
        for cls in sorted(counts):
            cls_cases = [c for c in cases if c["class"] == cls and c["plane"] in planes]
            if not cls_cases:
                continue
            if not cmd or name in broken:
                reason = why or broken[name]
                if name in broken:
                    failed += 1
                    log("diff %s/%s: FAILED: the decoder failed: %s" % (name, cls, reason))
                elif ci:
                    failed += 1
                    log("diff %s/%s: FAILED: the decoder cannot run (CI=true): %s" %
                        (name, cls, reason))
                else:
                    skipped += 1
                    log("diff %s/%s: SKIPPED: %s" % (name, cls, reason))
                continue
            bad = []
            for c in cls_cases:
                r, s, v = refs[c["id"]], seen[name], views[c["id"]]
                problems = []
                missing = [k for k in r.values() if k not in s]
                if missing:
                    problems.append("the decoder gave no answer for input %s" % missing)
                for vn in VIEWS[c["plane"]]:
                    vv = v[vn]
                    if missing:
                        break
                    if not vv["refused"]:
                        x = excess(s[r["orig"]], vv["calls"])
                        if x:
                            problems.append("reads: %s reads tools/call %s where mcpfence %s "
                                            "decided %s" % (name, x, vn, vv["calls"]))
                    if (vn, "pass") in r:
                        x = excess(s[r[(vn, "pass")]], vv["calls"])
                        if x:
                            problems.append("allowed: behind mcpfence %s (every call allowed) "
                                            "%s runs %s; decided: %s" % (vn, name, x, vv["calls"]))
                    if (vn, "pass_deny") in r and s[r[(vn, "pass_deny")]]:
                        problems.append("denied: behind mcpfence %s (every call denied) %s runs "
                                        "%s" % (vn, name, s[r[(vn, "pass_deny")]]))
                if problems:
                    bad.append((c, problems))
            if bad:
                failed += 1
                failures.append((name, cls, bad))
                log("diff %s/%s: FAILED: %d of %d cases" % (name, cls, len(bad), len(cls_cases)))
            else:
                passed += 1
                if verbose:
                    log("diff %s/%s: %d cases, passed" % (name, cls, len(cls_cases)))

    for name, cls, bad in failures:
        for c, problems in bad[:20]:
            log("\n--- %s/%s: %s" % (name, cls, c["id"]))
            log("  bytes: %s" % show(c["data"]))
            for p in problems:
                log("  " + p)
            for vn, vv in views[c["id"]].items():
                log("  mcpfence %-8s decided %s, refused %s" % (vn, vv["calls"], vv["refused"]))
                for k in ("pass", "pass_deny"):
                    if k in vv and base64.b64decode(vv[k]) != c["data"]:
                        log("    lets through (%s): %s" % ({"pass": "every call allowed",
                                                             "pass_deny": "every call denied"}[k],
                                                            show(base64.b64decode(vv[k]), 300)))
            r = refs[c["id"]]
            for dn in sorted(seen):
                parts = ["reads %s" % seen[dn].get(r["orig"])]
                for (vn, k), iid in ((k, i) for k, i in r.items() if k != "orig"):
                    parts.append("behind %s/%s runs %s" % (vn, k.replace("pass_deny", "deny")
                                                           .replace("pass", "allow"),
                                                           seen[dn].get(iid)))
                log("  %-9s %s" % (dn, "; ".join(parts)))
        if len(bad) > 20:
            log("  ... and %d more cases of %s/%s" % (len(bad) - 20, name, cls))

    # what the corpus proves: cases mcpfence refused that a server would have run a call of
    live = collections.Counter()
    refused = collections.Counter()
    for c in cases:
        v, r = views[c["id"]], refs[c["id"]]
        if not any(vv["refused"] for vv in v.values()):
            continue
        refused[c["class"]] += 1
        if any(excess(seen[dn].get(r["orig"]) or [], vv["calls"])
               for dn in seen for vv in v.values() if vv["refused"]):
            live[c["class"]] += 1
    log("\ndiff: per class: cases, refused by mcpfence (some plane), refused where some server "
        "runs a call the plane did not decide")
    for cls in sorted(counts):
        log("  %-12s %5d %5d %5d" % (cls, counts[cls], refused[cls], live[cls]))

    total = time.monotonic() - t0
    log("\ndiff: %d inputs to the decoders; view %.1f s; %s; total %.1f s" % (
        len(inputs), t_view, ", ".join("%s %.1f s" % kv for kv in sorted(dtime.items())), total))
    log("diff: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    if results:
        with open(results, "a") as f:
            # units: the decoders that ran and read the plain calls right
            f.write("diff %d %d %d %d\n" % (passed, failed, skipped,
                                             len([n for n in seen if n not in broken])))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
