"""kms-replay check, send and serve --from read captures through the capture library's reassembler, as
kms-analyze does: reordered, duplicated, overlapping and gapped sessions (the synthetic captures of
tests/analyzer/synthcap.py) give the exchanges kms-analyze reports; sessions sharing one 4-tuple stay
apart; a pcapng mixing link types is read; truncated files and unsupported link types are input errors
(exit 2) with kms-analyze's text."""
import json
import os
import subprocess
import sys
import tempfile

from replaylib import Server, capture, check, finish, run

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "analyzer"))
import synthcap  # noqa: E402

KMS_ANALYZE = os.environ["KMS_ANALYZE"]
WORK = tempfile.mkdtemp(prefix="kms-replay-input-")


def analyze(path):
    """(exit code, exchange records, stderr) of kms-analyze."""
    p = subprocess.run([KMS_ANALYZE, "--no-progress", "--format", "json", path], capture_output=True, text=True,
                       timeout=120)
    recs = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    return p.returncode, [r for r in recs if r["kind"] == "exchange"], p.stderr


def check_lines(out):
    return [l for l in out.splitlines() if " call " in l]


def write(name, pkts):
    return synthcap.write_pcap(os.path.join(WORK, name), pkts)


SOURCES = ["vlmcs-vlmcsd-v5-win8pro-ndr64-2req.pcapng", "vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng"]
VARIANTS = {"reordered": synthcap.reversed_data, "duplicated": synthcap.duplicated,
            "overlapping": synthcap.overlapping, "conflicting": synthcap.conflicting}

# ---------------------------------------------------------------- reassembly: every exchange still matches
for src in SOURCES:
    pkts = synthcap.session(capture(src))
    _, ref, _ = analyze(capture(src))
    with Server("--from", capture(src)) as srv:
        for kind, make in VARIANTS.items():
            f = write("%s-%s.pcap" % (kind, src), make(pkts))
            rc, got, _ = analyze(f)
            check(rc == 0 and len(got) == len(ref) and all(r["verdict"]["ok"] for r in got),
                  f"{kind} {src}: kms-analyze: {[r['verdict'] for r in got]}")
            rc, out = run("check", f)
            lines = check_lines(out)
            check(rc == 0, f"{kind} {src}: check exit {rc}:\n{out}")
            check(len(lines) == len(ref) and all("match (identical message bytes)" in l for l in lines),
                  f"{kind} {src}: check lines, want {len(ref)} matches:\n{out}")
            check(f"check: {len(ref)} exchanges, {len(ref)} match, 0 mismatch" in out, f"{kind} {src}: summary:\n{out}")
            rc, out = run("send", f, "--to", srv.v4, "--timeout", "5")
            check(rc == 0 and f"send: {len(ref)} exchanges as expected, 0 not, 0 connection errors" in out,
                  f"{kind} {src}: send exit {rc}:\n{out}")

# ---------------------------------------------------------------- gaps: what kms-analyze says, no more
src = "vlmcs-vlmcsd-v5-win8pro-ndr64-2req.pcapng"
pkts = synthcap.session(capture(src))
with Server("--from", capture(src)) as srv:
    # The head of the second response lost: exchange 2 has no recorded answer.
    f = write("gap-response.pcap", synthcap.lose_response_head(pkts))
    _, got, _ = analyze(f)
    check([r["verdict"]["outcome"] for r in got] == ["response", "no_response"], f"gap-response: analyzer {got}")
    rc, out = run("check", f)
    lines = check_lines(out)
    check(rc == 0 and len(lines) == 2 and "call 2 v5.0: ok: match (identical message bytes)" in lines[0]
          and "call 3 v5.0: NO RESPONSE: skipped (no recorded answer; ours: ok)" in lines[1],
          f"gap-response: check exit {rc}:\n{out}")
    rc, out = run("send", f, "--to", srv.v4, "--timeout", "5")
    check(rc == 0 and "send: 2 exchanges as expected, 0 not" in out, f"gap-response: send exit {rc}:\n{out}")
    # The second request lost: its answer is an orphan, checked by nobody and never sent.
    f = write("gap-request.pcap", synthcap.lose_last_request(pkts))
    _, got, _ = analyze(f)
    check([r["verdict"]["outcome"] for r in got] == ["response", "orphan"], f"gap-request: analyzer {got}")
    rc, out = run("check", f)
    lines = check_lines(out)
    check(rc == 0 and len(lines) == 1 and "call 2 v5.0: ok: match (identical message bytes)" in lines[0]
          and "check: 1 exchanges, 1 match" in out, f"gap-request: check exit {rc}:\n{out}")
    rc, out = run("send", f, "--to", srv.v4, "--timeout", "5")
    check(rc == 0 and "send: 1 exchanges as expected, 0 not" in out, f"gap-request: send exit {rc}:\n{out}")

# ---------------------------------------------------------------- sessions on one 4-tuple stay apart
src = "vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng"
base = synthcap.session(capture(src))
span = base[-1].ts - base[0].ts + 10**6
f = write("one-tuple.pcap", [p.copy(ts=p.ts + i * span) for i in range(20) for p in base])
_, got, _ = analyze(f)
check(len(got) == 60 and len({r["stream"] for r in got}) == 20, f"one 4-tuple: analyzer {len(got)} exchanges")
rc, out = run("check", f)
lines = check_lines(out)
check(rc == 0 and len(lines) == 60 and all("match (identical message bytes)" in l for l in lines),
      f"one 4-tuple: check exit {rc}, {len(lines)} lines:\n{out[-2000:]}")
# The stream numbers are kms-analyze's.
check(sorted({int(l.split()[2]) for l in lines}) == sorted({r["stream"] for r in got}),
      "one 4-tuple: check's streams are kms-analyze's")

# ---------------------------------------------------------------- a pcapng with a link type per interface
# mergecap of an SLL2 and an Ethernet capture (libpcap refuses it, tshark and kms-analyze read it).
a = synthcap.write_pcap(os.path.join(WORK, "a-sll2.pcap"),
                        synthcap.session(capture("vlmcs-vlmcsd-v4-win7pro-fixedid-1req.pcapng")), "sll2")
b = synthcap.write_pcap(os.path.join(WORK, "b-eth.pcap"), synthcap.session(capture("pykms-vlmcsd-v6-windows10.pcapng")))
mixed = os.path.join(WORK, "mixed.pcapng")
subprocess.run(["mergecap", "-F", "pcapng", "-w", mixed, a, b], check=True, capture_output=True, timeout=60)
rc, got, _ = analyze(mixed)
check(rc == 0 and len(got) == 2, f"mixed link types: kms-analyze exit {rc}, {len(got)} exchanges")
rc, out = run("check", mixed)
check(rc == 0 and len(check_lines(out)) == 2 and all("match (identical message bytes)" in l for l in check_lines(out)),
      f"mixed link types: check exit {rc}:\n{out}")

# ---------------------------------------------------------------- input errors: exit 2, kms-analyze's text
data = open(capture(src), "rb").read()
trunc = os.path.join(WORK, "truncated.pcapng")
open(trunc, "wb").write(data[:len(data) * 2 // 3])
user0 = synthcap.write_pcap(os.path.join(WORK, "user0.pcap"), base, link_override=147)
for bad, before in ((trunc, 1), (user0, 0)):
    rc, got, aerr = analyze(bad)
    reason = aerr.strip().removeprefix("kms-analyze: ")
    check(rc == 2 and reason.startswith(bad + ": at byte "), f"{bad}: kms-analyze exit {rc}: {aerr}")
    p = subprocess.run([os.environ["KMS_REPLAY"], "check", bad], capture_output=True, text=True, timeout=60)
    check(p.returncode == 2, f"{bad}: check exit {p.returncode}")
    check(p.stderr.strip() == "kms-replay check: " + reason, f"{bad}: check error {p.stderr!r}, want {reason!r}")
    # What was read before the damage is still checked, as kms-analyze still reports it.
    check(sum("match (identical message bytes)" in l for l in check_lines(p.stdout)) == before,
          f"{bad}: check before the damage:\n{p.stdout}")
    p = subprocess.run([os.environ["KMS_REPLAY"], "send", bad, "--to", "127.0.0.1:1", "--timeout", "1"],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 2 and p.stderr.strip() == "kms-replay send: " + reason and "connect" not in p.stdout,
          f"{bad}: send exit {p.returncode}: {p.stdout} {p.stderr}")
    p = subprocess.run([os.environ["KMS_REPLAY"], "serve", "--listen", "127.0.0.1:0", "--state-dir",
                        os.path.join(WORK, "state"), "--from", bad], capture_output=True, text=True, timeout=60)
    check(p.returncode == 2 and "--from: " + reason in p.stderr, f"{bad}: serve --from exit {p.returncode}: {p.stderr}")
    check("Sanitizer" not in p.stderr and "runtime error:" not in p.stderr, f"{bad}: serve: {p.stderr}")
finish()
