"""Shared helpers of the kms-replay network tests: start and stop servers on loopback ephemeral ports,
run kms-replay, read recorded PDUs. Every wait is bounded."""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

KMS_REPLAY = os.environ["KMS_REPLAY"]
REPLAY_PDUS = os.environ["REPLAY_PDUS"]
CAPTURES = os.environ["KMSCOPE_CAPTURES"]
REPLAY_DIR = os.environ.get("KMSCOPE_REPLAY_DIR", "")

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)
    return cond


def finish():
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)
    print("all passed")
    sys.exit(0)


def captures():
    return sorted(os.path.join(CAPTURES, f) for f in os.listdir(CAPTURES) if f.endswith((".pcap", ".pcapng")))


def capture(name):
    return os.path.join(CAPTURES, name)


def pdus(path):
    """[(connection, 'C'|'S', bytes)] of a capture."""
    out = subprocess.run([REPLAY_PDUS, path], check=True, capture_output=True, text=True, timeout=60).stdout
    res = []
    for line in out.splitlines():
        c, d, h = line.split()
        res.append((int(c), d, bytes.fromhex(h)))
    return res


class Server:
    """kms-replay serve on 127.0.0.1:0 and [::1]:0 (or the given listen addresses)."""

    def __init__(self, *args, listen=("127.0.0.1:0", "[::1]:0"), workdir=None, state_dir=None, env=None):
        self.own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="kms-replay-test-")
        self.ready = os.path.join(self.dir, "ready")
        self.logpath = os.path.join(self.dir, "activations.log")
        self.errpath = os.path.join(self.dir, "stderr.log")
        # The generated identity lives in the test's folder, never in the machine's /var/lib/kms-replay.
        self.state_dir = state_dir or os.path.join(self.dir, "state")
        if os.path.exists(self.ready):
            os.remove(self.ready)
        # No --foreground: staying in the foreground is the default.
        cmd = [KMS_REPLAY, "serve", "--ready-file", self.ready, "--log-file", self.logpath, "--state-dir",
               self.state_dir]
        for l in listen:
            cmd += ["--listen", l]
        cmd += list(args)
        self.err = open(self.errpath, "a")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.err, env=env)
        deadline = time.time() + 20
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + open(self.errpath).read())
            if time.time() > deadline:
                self.kill()
                raise RuntimeError("server did not become ready")
            time.sleep(0.02)
        self.addrs = open(self.ready).read().split()
        self.v4 = next((a for a in self.addrs if not a.startswith("[")), None)
        self.v6 = next((a for a in self.addrs if a.startswith("[")), None)

    def port(self, v6=False):
        return int((self.v6 if v6 else self.v4).rsplit(":", 1)[1])

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.err.close()
        with open(self.errpath, errors="replace") as f:
            err = f.read()
        # Sanitizer builds: any report from the server is a failure.
        check("Sanitizer" not in err and "runtime error:" not in err, "server sanitizer report:\n" + err)
        check(self.proc.returncode in (0, -signal.SIGKILL), f"server exit code {self.proc.returncode}:\n{err}")
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        if self.own_dir and not os.environ.get("KMS_REPLAY_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)


def run(*args, timeout=120):
    p = subprocess.run([KMS_REPLAY, *args], capture_output=True, text=True, timeout=timeout)
    check("Sanitizer" not in p.stderr and "runtime error:" not in p.stderr, f"kms-replay {args[0]}: {p.stderr}")
    return p.returncode, p.stdout + p.stderr


def connect(port, v6=False, timeout=5.0):
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(("::1" if v6 else "127.0.0.1", port))
    return s


def read_pdu(s):
    """One PDU, or None when the server closed the connection."""
    hdr = b""
    while len(hdr) < 16:
        chunk = s.recv(16 - len(hdr))
        if not chunk:
            return None
        hdr += chunk
    frag = struct.unpack_from("<H", hdr, 8)[0]
    body = b""
    while len(body) < frag - 16:
        chunk = s.recv(frag - 16 - len(body))
        if not chunk:
            return None
        body += chunk
    return hdr + body


def wait_closed(s, timeout):
    """True when the server closes within `timeout` seconds (reading and discarding what it sends)."""
    s.settimeout(0.2)
    end = time.time() + timeout
    while time.time() < end:
        try:
            if not s.recv(65536):
                return True
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False
