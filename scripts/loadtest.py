"""Bounded load test of `leukoscope serve` on loopback: latency percentiles, throughput, status counts.

    python scripts/loadtest.py --model runs/latest                 # starts a server on a free port itself
    python scripts/loadtest.py --url http://127.0.0.1:8000 -n 500 -c 16 [--token T] [--explain]

Prints one JSON object on stdout. Exit code 1 when any request got a 5xx or failed at the transport level,
so it can gate CI. Only loopback addresses are accepted: this is a test of our own server, never a tool
to send traffic elsewhere. Every run is bounded in request count and in time (--max-seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import cv2
import httpx
import numpy as np


def synthetic_cell(size: int = 224, seed: int = 0) -> bytes:
    """A PNG of one stained 'cell' on black, like a C-NMC image (no dataset needed)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.uint8)
    c, r = size // 2, size // 3
    cv2.circle(img, (c, c), r, (200, 150, 190), -1)
    cv2.circle(img, (c + r // 5, c), r // 2, (120, 40, 110), -1)
    img = np.where(img > 0, cv2.add(img, rng.integers(0, 25, img.shape, dtype=np.uint8)), 0).astype(np.uint8)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def check_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(
            f"error: {url} is not a loopback address; the load test only targets 127.0.0.0/8 or ::1"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`leukoscope serve MODEL` as a child process on a free loopback port, logging to a temp file."""

    def __init__(self, model: Path, args: argparse.Namespace) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        port = self.url.rsplit(":", 1)[1]
        cmd = [sys.executable, "-m", "leukoscope", "serve", str(model), "--host", "127.0.0.1", "--port", port]
        cmd += ["--max-queue", str(max(32, args.concurrency * 2))]
        cmd += ["--max-concurrency", str(args.server_concurrency)]
        if args.token:
            cmd += ["--token", args.token]
        # a file, not a pipe: a full pipe would block the server's request log and stall the test
        self.log = tempfile.TemporaryFile() if args.quiet else None  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)

    def check_alive(self) -> None:
        if self.proc.poll() is None:
            return
        tail = ""
        if self.log is not None:
            self.log.seek(0)
            tail = self.log.read().decode(errors="replace")[-2000:]
        raise SystemExit(f"error: the server exited with code {self.proc.returncode}\n{tail}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.log is not None:
            self.log.close()


def wait_healthy(url: str, server: Server | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server is not None:
            server.check_alive()
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"error: {url}/health did not answer within {timeout:.0f} s")


async def run_load(url: str, image: bytes, args: argparse.Namespace) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    endpoint = f"{url}/api/v1/predict" + ("?explain=true" if args.explain else "")
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    remaining = args.requests
    deadline = time.monotonic() + args.max_seconds
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            start = time.perf_counter()
            try:
                r = await client.post(
                    endpoint, files={"file": ("cell.png", image, "image/png")}, headers=headers
                )
                statuses[str(r.status_code)] += 1
            except httpx.HTTPError as exc:
                statuses[f"transport:{type(exc).__name__}"] += 1
            latencies.append((time.perf_counter() - start) * 1000)

    async with httpx.AsyncClient(timeout=args.timeout, limits=limits) as client:
        await client.get(f"{url}/health")  # connect + warm up outside the measurement
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
    return summarise(latencies, statuses, elapsed, args)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summarise(
    latencies: list[float], statuses: Counter[str], elapsed: float, args: argparse.Namespace
) -> dict[str, object]:
    server_errors = sum(n for code, n in statuses.items() if code.isdigit() and int(code) >= 500)
    transport = sum(n for code, n in statuses.items() if not code.isdigit())
    done = len(latencies)
    return {
        "requests": done,
        "requested": args.requests,
        "concurrency": args.concurrency,
        "explain": args.explain,
        "duration_s": round(elapsed, 3),
        "requests_per_s": round(done / elapsed, 2) if elapsed > 0 else None,
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 1),
            "p90": round(percentile(latencies, 90), 1),
            "p99": round(percentile(latencies, 99), 1),
            "max": round(max(latencies), 1) if latencies else None,
            "mean": round(statistics.fmean(latencies), 1) if latencies else None,
        },
        "status_counts": dict(sorted(statuses.items())),
        "server_errors_5xx": server_errors,
        "transport_errors": transport,
        "ok": server_errors == 0 and transport == 0 and done == args.requests,
        "cpu_count": os.cpu_count(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8000 (loopback only)")
    target.add_argument("--model", type=Path, help="start `leukoscope serve MODEL` on a free loopback port")
    p.add_argument("-n", "--requests", type=int, default=500)
    p.add_argument("-c", "--concurrency", type=int, default=16)
    p.add_argument("--image", type=Path, help="image to upload (default: a synthetic 224 px cell PNG)")
    p.add_argument("--token", help="API token, when the server needs one")
    p.add_argument("--explain", action="store_true", help="ask for Grad-CAM heatmaps too")
    p.add_argument("--server-concurrency", type=int, default=1, help="--max-concurrency of a started server")
    p.add_argument("--timeout", type=float, default=120.0, help="per-request timeout, seconds")
    p.add_argument("--max-seconds", type=float, default=600.0, help="stop sending after this long")
    p.add_argument("--startup-timeout", type=float, default=180.0)
    p.add_argument("--quiet", action="store_true", help="hide the started server's log")
    args = p.parse_args(argv)
    if not 1 <= args.requests <= 100_000 or not 1 <= args.concurrency <= 256:
        p.error("--requests must be 1..100000 and --concurrency 1..256")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    image = args.image.read_bytes() if args.image else synthetic_cell()
    server = Server(args.model, args) if args.model else None
    url = server.url if server else args.url.rstrip("/")
    try:
        check_loopback(url)
        wait_healthy(url, server, args.startup_timeout)
        report = asyncio.run(run_load(url, image, args))
    finally:
        if server is not None:
            server.stop()
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
