#!/usr/bin/env python3
"""Activations per second and latency of kms-replay serve, vlmcsd and the py-kms server, measured in one
run on this machine with `kms-replay send` as the load generator (loopback only).

    bench/replay/run_bench.py --kms-replay BUILD/replay/kms-replay \
        [--vlmcsd /path/to/vlmcsd/bin/vlmcsd] [--pykms /path/to/py-kms/py-kms] [--duration 5]

The peers are NOT built here: pass the paths of binaries built elsewhere (see README.md). Two loads:
  new-conn  one activation per TCP connection (bind + v6 request), capture vlmcs-pykms-v6-win10pro-1req
  multi     two v6 activations per connection (NDR32, no BTFN), capture vlmcs-vlmcsd-v6-server2019dc-N0-B0-2req
For each server and load: peak throughput over concurrency 1, 4, 8, 16, then latency at half of the peak
rate (--rate = peak/2). Latency is request sent -> response received (connect and bind excluded)."""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAPS = os.path.join(ROOT, "captures")
NEW_CONN = os.path.join(CAPS, "vlmcs-pykms-v6-win10pro-1req.pcapng")
MULTI = os.path.join(CAPS, "vlmcs-vlmcsd-v6-server2019dc-N0-B0-2req.pcapng")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not listen")


def cpu_seconds(pid):
    """User + system CPU of a process and its reaped children (vlmcsd forks per connection)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


CLIENT_PREFIX = []


def send(kms, cap, port, concurrency, duration, rate=None):
    cmd = CLIENT_PREFIX + [kms, "send", cap, "--to", f"127.0.0.1:{port}", "--concurrency", str(concurrency), "--duration",
           str(duration), "--timeout", "5", "--quiet", "--json"]
    if rate:
        cmd += ["--rate", str(rate)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kms-replay", required=True)
    ap.add_argument("--vlmcsd")
    ap.add_argument("--pykms", help="py-kms source folder holding pykms_Server.py")
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter for py-kms")
    ap.add_argument("--canned", help="bench/replay canned_server: the same load against canned answers over epoll "
                                     "(no parsing, no crypto), the ceiling serve is reported against")
    ap.add_argument("--replay-pdus", help="the replay_pdus test helper that cuts the canned answers out of the "
                                          "captures (default: tests/replay_pdus beside kms-replay)")
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--threads", type=int, default=1, help="kms-replay serve --threads")
    ap.add_argument("--server-cpus", help="taskset CPU list for the servers, e.g. 0")
    ap.add_argument("--client-cpus", help="taskset CPU list for the load generator, e.g. 1")
    a = ap.parse_args()
    server_prefix = ["taskset", "-c", a.server_cpus] if a.server_cpus else []
    if a.client_cpus:
        CLIENT_PREFIX[:] = ["taskset", "-c", a.client_cpus]

    servers = []
    port = free_port()
    servers.append(("kms-replay serve", port, [a.kms_replay, "serve", "--foreground", "--listen", f"127.0.0.1:{port}",
                                               "--quiet", "--log-file", "/dev/null", "--threads", str(a.threads),
                                               "--from", NEW_CONN], None, ["new-conn", "multi"]))
    if a.canned:
        pdus = a.replay_pdus or os.path.join(os.path.dirname(a.kms_replay), "tests", "replay_pdus")
        for load, cap in (("new-conn", NEW_CONN), ("multi", MULTI)):
            answers = os.path.join(tempfile.mkdtemp(prefix="kms-canned-"), "answers")
            with open(answers, "w") as f:
                subprocess.run([pdus, cap], stdout=f, check=True, timeout=60)
            port = free_port()
            servers.append(("canned epoll", port, [a.canned, str(port), answers], None, [load]))
    if a.vlmcsd:
        port = free_port()
        # -H 17763: a Windows Server 2019 host (vlmcsd otherwise picks a random host build per start).
        servers.append(("vlmcsd", port, [a.vlmcsd, "-D", "-H", "17763", "-L", f"127.0.0.1:{port}"], None,
                        ["new-conn", "multi"]))
    if a.pykms:
        port = free_port()
        servers.append(("py-kms", port, [a.python, "pykms_Server.py", "127.0.0.1", str(port), "-V", "ERROR"], a.pykms,
                        ["new-conn"]))  # py-kms closes the connection after one request

    results = {}
    for name, port, cmd, cwd, loads in servers:
        proc = subprocess.Popen(server_prefix + cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port, proc)
            for load in loads:
                cap = NEW_CONN if load == "new-conn" else MULTI
                best = None
                for c in (1, 4, 8, 16):
                    cpu0 = cpu_seconds(proc.pid)
                    r = send(a.kms_replay, cap, port, c, a.duration)
                    r["concurrency"] = c
                    ok = max(r["exchanges_ok"], 1)
                    r["server_cpu_us"] = (cpu_seconds(proc.pid) - cpu0) * 1e6 / ok
                    print(f"{name:18} {load:8} c={c:<3} {r['activations_per_second']:9.0f}/s  p50 "
                          f"{r['latency_ms']['p50']:.3f} ms  p99 {r['latency_ms']['p99']:.3f} ms  "
                          f"server CPU {r['server_cpu_us']:.0f} us/activation  "
                          f"failed {r['exchanges_failed']} errors {r['connection_errors']}", flush=True)
                    if r["exchanges_failed"] == 0 and r["connection_errors"] == 0 and (
                            best is None or r["activations_per_second"] > best["activations_per_second"]):
                        best = r
                half = None
                if best:
                    per_conn = 1 if load == "new-conn" else 2
                    rate = best["activations_per_second"] / 2 / per_conn
                    half = send(a.kms_replay, cap, port, 4, a.duration, rate=rate)
                    print(f"{name:18} {load:8} half load ({rate * per_conn:.0f}/s): "
                          f"{half['activations_per_second']:.0f}/s  p50 {half['latency_ms']['p50']:.3f} ms  p99 "
                          f"{half['latency_ms']['p99']:.3f} ms  p99.9 {half['latency_ms']['p99.9']:.3f} ms", flush=True)
                results[(name, load)] = (best, half)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    print("\n| server | load | peak activations/s (concurrency) | server CPU per activation at peak | p99 at peak | "
          "p99 at half peak | p99.9 at half peak |")
    print("|---|---|---|---|---|---|---|")
    for (name, load), (best, half) in results.items():
        if not best:
            print(f"| {name} | {load} | failed | | | | |")
            continue
        print(f"| {name} | {load} | {best['activations_per_second']:.0f} ({best['concurrency']}) | "
              f"{best['server_cpu_us']:.0f} us | "
              f"{best['latency_ms']['p99']:.3f} ms | {half['latency_ms']['p99']:.3f} ms | "
              f"{half['latency_ms']['p99.9']:.3f} ms |")
    for load in ("new-conn", "multi"):
        ours = results.get(("kms-replay serve", load), (None, None))[0]
        canned = results.get(("canned epoll", load), (None, None))[0]
        if ours and canned:
            print(f"ratio {load}: kms-replay / canned epoll server = "
                  f"{ours['activations_per_second'] / canned['activations_per_second']:.2f}")
        for peer in ("vlmcsd", "py-kms"):
            theirs = results.get((peer, load), (None, None))[0]
            if ours and theirs:
                print(f"ratio {load}: kms-replay / {peer} = "
                      f"{ours['activations_per_second'] / theirs['activations_per_second']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
