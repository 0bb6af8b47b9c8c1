#!/usr/bin/env python3
"""Genuine-count storage under a fresh-CMID load (issue 11): throughput of the first and the last 10 s
over a growing table, genuine vs fixed count activations per second, and the WAL's peak size.

    bench/replay/genuine_store.py --kms-replay BUILD/replay/kms-replay [--cmids 200000] [--max-seconds 300]
        [--concurrency 8] [--db-sync full|normal] [--db-dir DIR]

The server runs `serve --count-policy genuine --db DIR/cmids.db --quiet` on 127.0.0.1; the load is
`send --vary-cmid` (every request a fresh CMID) in consecutive 10 s windows, one `send` per window, until
--cmids distinct CMIDs were acknowledged or --max-seconds passed. A thread samples the size of
`cmids.db-wal` every 0.1 s. Then the same load for 10 s against `--count-policy fixed` with the same
database flags, and without a database. Every run writes an --ack-file (the genuine run needs it to show
that every acknowledged CMID was stored; the load generator pays one write per answer for it, so the
fixed runs write one too: the same load). The server's resident memory is read after every window, so a
long run is also a soak: throughput and memory per window over a table that keeps growing. Prints one
JSON object (and a table on stderr)."""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAP = os.path.join(ROOT, "captures", "vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng")


def start(kms, work, *args):
    ready = os.path.join(work, "ready")
    if os.path.exists(ready):
        os.remove(ready)
    err = open(os.path.join(work, "stderr.log"), "a")
    p = subprocess.Popen([kms, "serve", "--listen", "127.0.0.1:0", "--ready-file", ready, "--state-dir",
                          os.path.join(work, "state"), "--log-file", os.path.join(work, "activations.log"), "--quiet",
                          *args], stdout=subprocess.DEVNULL, stderr=err)
    end = time.time() + 20
    while not os.path.exists(ready):
        if p.poll() is not None or time.time() > end:
            p.kill()
            raise RuntimeError("server did not start: " + open(os.path.join(work, "stderr.log")).read())
        time.sleep(0.05)
    return p, open(ready).read().split()[0]


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def rss_mib(pid, field="VmRSS"):
    """The process's resident memory (VmRSS) or its peak (VmHWM), in MiB, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def window(kms, addr, seconds, concurrency, acks=None):
    cmd = [kms, "send", CAP, "--to", addr, "--vary-cmid", "--concurrency", str(concurrency), "--duration",
           str(seconds), "--timeout", "5", "--json", "--quiet"]
    if acks:
        cmd += ["--ack-file", acks]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120).stdout
    js = json.loads(out.strip().splitlines()[-1])
    # Every answered request counts: a genuine host's first N clients get a count the client refuses.
    js["answered"] = js["exchanges_ok"] + js["exchanges_failed"]
    return js


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kms-replay", required=True)
    ap.add_argument("--cmids", type=int, default=200000)
    ap.add_argument("--max-seconds", type=float, default=300)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--db-sync", default="full", choices=("full", "normal"))
    ap.add_argument("--db-dir", default=None, help="folder for the database (default: a new folder in /var/tmp)")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="kms-store-bench-", dir=a.db_dir or "/var/tmp")
    db = os.path.join(work, "cmids.db")
    acks = os.path.join(work, "acks")
    peak = {"wal": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                peak["wal"] = max(peak["wal"], os.path.getsize(db + "-wal"))
            except OSError:
                pass
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    p, addr = start(a.kms_replay, work, "--count-policy", "genuine", "--db", db, "--db-sync", a.db_sync)
    windows, rss, total, t0 = [], [], 0, time.time()
    try:
        while total < a.cmids and time.time() - t0 < a.max_seconds:
            js = window(a.kms_replay, addr, 10, a.concurrency, acks)
            total += js["answered"]
            windows.append(js["answered"] / js["seconds"])
            rss.append(rss_mib(p.pid))
            print(f"window {len(windows)}: {windows[-1]:.0f} answered/s, {total} CMIDs, WAL peak "
                  f"{peak['wal'] / 2**20:.1f} MiB, server RSS {rss[-1]:.1f} MiB", file=sys.stderr)
        rss_peak = rss_mib(p.pid, "VmHWM")
        t = time.time()
        st = subprocess.run([a.kms_replay, "status", "--db", db, "--json"], capture_output=True, text=True,
                            timeout=120)
        status_s = time.time() - t
        stored = json.loads(st.stdout)["kms_ids"][0]["distinct_cmids_30d"]
    finally:
        stop(p)
        done.set()
        sampler.join()
    acked = sum(1 for _ in open(acks))
    genuine_rate = windows[0] if windows else 0
    p, addr = start(a.kms_replay, work, "--count-policy", "fixed", "--db", os.path.join(work, "fixed.db"),
                    "--db-sync", a.db_sync)
    fixed_db = window(a.kms_replay, addr, 10, a.concurrency, os.path.join(work, "fixed.acks"))["answered"] / 10
    stop(p)
    p, addr = start(a.kms_replay, work, "--count-policy", "fixed")
    fixed = window(a.kms_replay, addr, 10, a.concurrency, os.path.join(work, "fixed.acks"))["answered"] / 10
    stop(p)
    res = {
        "distinct_cmids": total, "acknowledged": acked, "stored": stored, "windows_per_s": [round(w) for w in windows],
        "first_10s": round(windows[0]), "last_10s": round(windows[-1]),
        "last_over_first": round(windows[-1] / windows[0], 3), "wal_peak_mib": round(peak["wal"] / 2**20, 2),
        "status_seconds": round(status_s, 3), "server_rss_mib_per_window": [round(r, 1) for r in rss],
        "server_rss_peak_mib": round(rss_peak, 1), "genuine_first_10s": round(genuine_rate),
        "fixed_with_db": round(fixed_db), "fixed_no_db": round(fixed),
        "genuine_over_fixed_with_db": round(genuine_rate / fixed_db, 3),
        "genuine_over_fixed_no_db": round(genuine_rate / fixed, 3), "concurrency": a.concurrency, "db_sync": a.db_sync,
        "load_average": os.getloadavg()[0]}
    print(json.dumps(res))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
