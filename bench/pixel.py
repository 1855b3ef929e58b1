"""Pixel hot path: MailSignal's tracker against nginx serving the same 43-byte GIF.

Both servers are pinned to core 0 (`taskset -c 0`, children inherit it), wrk runs on
core 1 with 50 connections. nginx writes its access log; MailSignal journals every hit
durably (group commit, synchronous=FULL) before answering. Runs alternate
nginx/MailSignal `--rounds` times and the medians are printed with the ratio.
Afterwards the journal row count is compared with the requests wrk completed, so the
figure is for recorded hits, not for answers alone.

    .venv/bin/python bench/pixel.py [--seconds 10] [--rounds 3] [--connections 50]

Needs Debian's nginx and wrk (`apt-get install nginx-light wrk`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mailsignal.keyring import create_secret, load_keyring  # noqa: E402
from mailsignal.tokens import Signer  # noqa: E402
from mailsignal.urls import TrackingUrls  # noqa: E402
from mailsignal.web.track import GIF  # noqa: E402

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/access.log combined;
    client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
    uwsgi_temp_path {dir}; scgi_temp_path {dir};
    server {{
        listen 127.0.0.1:{port};
        location /o/ {{
            default_type image/gif;
            add_header Cache-Control "no-store, no-cache, must-revalidate, max-age=0";
            alias {dir}/pixel.gif;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listening on {port} after {timeout}s")


def wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def latency(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            raise SystemExit(f"cannot read p{label} from wrk:\n{out}")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": latency("50"),
        "p99": latency("99"),
        "requests": total,
        "non2xx": int(errors.group(1)) if errors else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    for tool in ("nginx", "wrk", "taskset"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} not found: apt-get install nginx-light wrk util-linux")

    work = Path(tempfile.mkdtemp(prefix="ms-bench-"))
    (work / "pixel.gif").write_bytes(GIF)
    nginx_port, ms_port = free_port(), free_port()
    (work / "nginx.conf").write_text(NGINX_CONF.format(dir=work, port=nginx_port))
    data = work / "ms"
    env = {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(data),
        "MAILSIGNAL_BASE_URL": f"http://127.0.0.1:{ms_port}",
        "MAILSIGNAL_LOG_LEVEL": "warning",
    }
    exe = str(Path(sys.executable).with_name("mailsignal"))
    subprocess.run([exe, "init"], env=env, check=True, capture_output=True)
    create_secret(data / "secret.key")
    keys, current = load_keyring(data / "secret.key")
    signer = Signer(keys, current)

    nginx = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            shutil.which("nginx") or "/usr/sbin/nginx",
            "-c",
            str(work / "nginx.conf"),
            "-p",
            str(work),
        ],
        stderr=subprocess.DEVNULL,
    )
    tracker = subprocess.Popen(
        ["taskset", "-c", "0", exe, "serve", "--no-ingest", "--port", str(ms_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_port(nginx_port)
        wait_port(ms_port)
        # The pixel URL exactly as a tracked copy carries it (nginx's serves any /o/ path).
        urls = {
            "nginx": TrackingUrls(signer, f"http://127.0.0.1:{nginx_port}").pixel(1),
            "mailsignal": TrackingUrls(signer, f"http://127.0.0.1:{ms_port}").pixel(1),
        }
        for url in urls.values():  # warm up
            wrk(url, 2, args.connections)
        journal = data / "journal.db"
        before = sqlite3.connect(journal).execute("SELECT count(*) FROM hit").fetchone()[0]
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
        for _ in range(args.rounds):
            for name, url in urls.items():
                runs[name].append(wrk(url, args.seconds, args.connections))
        after = sqlite3.connect(journal).execute("SELECT count(*) FROM hit").fetchone()[0]
    finally:
        nginx.send_signal(signal.SIGQUIT)
        os.killpg(tracker.pid, signal.SIGTERM)
        nginx.wait(10)
        tracker.wait(20)

    med = {
        name: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99")}
        for name, rs in runs.items()
    }
    answered = sum(int(r["requests"]) for r in runs["mailsignal"])
    print(
        f"pixel, 1 core each, wrk -c{args.connections} from core 1, {args.rounds} x "
        f"{args.seconds}s, medians"
    )
    for name in ("nginx", "mailsignal"):
        m = med[name]
        print(
            f"  {name:<11} {m['rps']:>9.0f} req/s   p50 {m['p50']:.2f} ms   p99 {m['p99']:.2f} ms"
            f"   runs: {', '.join(str(round(r['rps'])) for r in runs[name])}"
        )
    print(f"  ratio mailsignal/nginx = {med['mailsignal']['rps'] / med['nginx']['rps']:.2f}")
    print(
        f"  hits journaled during measured runs: {after - before} of {answered} answered "
        f"(wrk counts completed responses; a response is sent only after its commit)"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
