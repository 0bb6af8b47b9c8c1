"""kms-replay check on every capture: the recorded requests go through serve's server path; every
recorded response is rebuilt byte for byte; tampered captures are reported as such (exit 1)."""
import json
import os
import subprocess

from replaylib import captures, check, finish, run

TAMPERED = {
    "tampered-vlmcs-vlmcsd-v4-office2010-ndr64-2req-req1-mac.pcapng": "request_mac",
    "tampered-vlmcs-vlmcsd-v5-win8pro-ndr64-2req-resp2-hash.pcapng": "hash",
}

for path in captures():
    name = os.path.basename(path)
    rc, out = run("check", path)
    lines = [l for l in out.splitlines() if " call " in l]
    check(lines, f"{name}: no exchange line")
    if name in TAMPERED:
        check(rc == 1, f"{name}: exit {rc}, want 1")
        check(any("TAMPERED" in l and TAMPERED[name] in l for l in lines), f"{name}: not reported as tampered:\n{out}")
        # The untampered exchange of the same capture still matches.
        check(any("match (identical message bytes)" in l for l in lines), f"{name}: other exchange not matched")
    else:
        check(rc == 0, f"{name}: exit {rc}:\n{out}")
        for l in lines:
            ok = ("ok: match (identical message bytes)" in l or "HRESULT 0x8007000D ERROR_INVALID_DATA: match" in l
                  or "NO RESPONSE: skipped (no recorded answer" in l)
            check(ok, f"{name}: {l}")
    rc2, js = run("check", "--json", path)
    for l in js.splitlines():
        j = json.loads(l)
        # The JSON vocabulary shared with kms-analyze (docs/json.md).
        check({"kind", "ts", "file", "stream", "call_id", "version", "recorded", "ours", "status", "diffs"} <= set(j)
              and j["kind"] == "check" and j["file"] == path, f"{name}: JSON line lacks fields: {l}")
    # The same stream numbers, versions and times as kms-analyze gives the same exchanges.
    if name not in TAMPERED:
        a = subprocess.run([os.environ["KMS_ANALYZE"], "--no-progress", "--format", "json", path],
                           capture_output=True, text=True, timeout=60).stdout
        ours = {(j["stream"], j["call_id"], j["version"], j["ts"]) for j in map(json.loads, js.splitlines())}
        theirs = {(r["stream"], r["call_id"], r["version"], r["ts"]) for r in map(json.loads, a.splitlines())
                  if r["kind"] == "exchange" and r["verdict"]["outcome"] != "orphan"}
        check(ours == theirs, f"{name}: check --json and kms-analyze disagree on stream/call/version/ts:\n{ours}\n{theirs}")

# Several captures at once: one summary, exit 1 because two are tampered.
rc, out = run("check", *captures())
check(rc == 1 and "2 tampered" in out and " 0 mismatch" in out, "all captures: " + out.splitlines()[-1])
finish()
