"""kms-replay check on every capture: the recorded requests go through serve's server path; every
recorded response is rebuilt byte for byte; tampered captures are reported as such (exit 1)."""
import json
import os

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
            ok = ("match (identical message bytes)" in l or "HRESULT 0x8007000D: match" in l
                  or "skipped (no recorded answer" in l)
            check(ok, f"{name}: {l}")
    rc2, js = run("check", "--json", path)
    for l in js.splitlines():
        j = json.loads(l)
        check({"capture", "call_id", "status", "diffs"} <= set(j), f"{name}: JSON line lacks fields: {l}")

# Several captures at once: one summary, exit 1 because two are tampered.
rc, out = run("check", *captures())
check(rc == 1 and "2 tampered" in out and " 0 mismatch" in out, "all captures: " + out.splitlines()[-1])
finish()
