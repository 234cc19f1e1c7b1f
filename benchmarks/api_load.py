"""The HTTP front under load (issue 10): with a Monte Carlo job running on `edt serve`,

- status polling throughput (GET /v1/jobs/{id}, requests/s) from a load generator in another
  process on loopback, with its p50/p99 latency;
- submit latency p50/p99 (POST /v1/jobs; the jobs are cancelled while still queued);
- the job's scenarios/s without and with the polling load, and their ratio (goal: the API
  slows the job by at most 10%, i.e. ratio >= 0.90).

Prints figures; asserts nothing (the machine is shared, figures move from run to run).

    python benchmarks/api_load.py [--samples 300000] [--pollers 4] [--submits 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.client import Client  # noqa: E402
from jobs.registry import Registry  # noqa: E402
from tests.api_support import ServerProcess, small_mc, write_tokens  # noqa: E402

TOKEN = "acme-submitter"
# The load generator: its own process, so that its CPU is not the server's GIL.
LOAD = r"""
import json, sys, threading, time
import httpx
url, token, pollers, submits, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
spec = json.loads(sys.stdin.readline())
print("ready", flush=True)  # imports done: their CPU is not charged to the job
job_id = sys.stdin.readline().strip()
h = {"Authorization": f"Bearer {token}"}
stop = threading.Event()
polls, submit_ms = [], []
def poller():
    with httpx.Client(base_url=url, headers=h, timeout=30) as c:
        while not stop.is_set():
            t0 = time.perf_counter()
            r = c.get(f"/v1/jobs/{job_id}")
            polls.append(time.perf_counter() - t0)
            if r.json()["status"] in ("succeeded", "failed", "cancelled"):
                stop.set()
            if rate:
                time.sleep(max(0.0, pollers / rate - (time.perf_counter() - t0)))
def submitter():
    with httpx.Client(base_url=url, headers=h, timeout=30) as c:
        for _ in range(submits):
            if stop.is_set():
                break
            t0 = time.perf_counter()
            r = c.post("/v1/jobs", json=spec)
            submit_ms.append(time.perf_counter() - t0)
            c.post(f"/v1/jobs/{r.json()['id']}/cancel")
t0 = time.perf_counter()
threads = [threading.Thread(target=poller) for _ in range(pollers)]
if submits:
    threads.append(threading.Thread(target=submitter))
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"polls": polls, "submits": submit_ms, "seconds": time.perf_counter() - t0}))
"""


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _rate(registry: Registry, job_id: str) -> float:
    """Steady throughput: rows committed after the first chunk over the time they took (the
    actor pool's start and the summary are the same with or without load, and left out)."""
    chunks = sorted(registry.chunks(job_id), key=lambda c: c.committed_at)
    span = (chunks[-1].committed_at - chunks[0].committed_at).total_seconds()
    return sum(c.rows for c in chunks[1:]) / span if span > 0 else float("nan")


def _run_job(
    c: Client, url: str, spec: dict[str, Any], load: list[str] | None, registry: Registry
) -> tuple[float, dict[str, Any] | None]:
    proc = None
    if load is not None:
        proc = subprocess.Popen(
            [sys.executable, "-c", LOAD, url, TOKEN, *load],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(small_mc(samples=10, chunk_size=10)) + "\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "ready"
    job = c.submit(spec)
    out = None
    if proc is not None:
        stdout, _ = proc.communicate(job.id + "\n", timeout=1800)
        out = json.loads(stdout)
    final = c.wait(job.id, poll=0.5, timeout=1800)
    assert final.status.value == "succeeded", final
    return _rate(registry, job.id), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=300_000)
    ap.add_argument("--pollers", type=int, default=4)
    ap.add_argument("--submits", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    spec = small_mc(samples=args.samples, chunk_size=max(1, args.samples // 40))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        env = {
            **os.environ,
            "RAY_AUTH_MODE": "disabled",
            "EDT_REGISTRY": f"sqlite:///{tmp / 'registry.db'}",
            "EDT_STORAGE": str(tmp / "results"),
            "EDT_TOKENS_FILE": str(write_tokens(tmp / "tokens.yaml")),
            # One job runs at a time: the submitted probes stay queued until cancelled.
            "EDT_MAX_RUNNING_JOBS": "1",
            "EDT_QUOTA_MAX_ACTIVE_JOBS": "100000",
        }
        server = ServerProcess(env, tmp).start()
        try:
            with Client(server.url, TOKEN) as c:
                reg = Registry(env["EDT_REGISTRY"])
                warm = small_mc(samples=2000, chunk_size=500)
                _run_job(c, server.url, warm, None, reg)  # Ray, workers and their caches warm
                # Interleaved repetitions: the machine is shared, so conditions drift;
                # medians of side-by-side runs are what compare.
                quiet, loaded, paced = [], [], []
                out: dict[str, Any] = {"polls": [], "submits": [], "seconds": 0.0}
                for _ in range(args.repeat):
                    quiet.append(_run_job(c, server.url, spec, None, reg)[0])
                    rate, o = _run_job(
                        c, server.url, spec, [str(args.pollers), str(args.submits), "0"], reg
                    )
                    loaded.append(rate)
                    assert o is not None
                    for k in ("polls", "submits"):
                        out[k] += o[k]
                    out["seconds"] += o["seconds"]
                    paced.append(_run_job(c, server.url, spec, ["2", "0", "20"], reg)[0])
        finally:
            server.stop()
    polls, submits = out["polls"], out["submits"]
    q, lo, pa = statistics.median(quiet), statistics.median(loaded), statistics.median(paced)
    print(
        f"Monte Carlo job: {args.samples:,} scenarios, {spec['chunk_size']:,} per chunk, "
        f"`edt serve` embedded Ray; {args.repeat} interleaved repetitions, medians; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"status polling ({args.pollers} pollers, as fast as answered): "
        f"{len(polls) / out['seconds']:,.0f} requests/s, "
        f"p50 {_pct(polls, 0.5) * 1e3:.1f} ms, p99 {_pct(polls, 0.99) * 1e3:.1f} ms"
    )
    print(
        f"submit latency over {len(submits)} submits during the jobs: "
        f"p50 {_pct(submits, 0.5) * 1e3:.1f} ms, p99 {_pct(submits, 0.99) * 1e3:.1f} ms"
    )
    print(
        f"job without polling: {q:,.0f} scenarios/s (runs: {', '.join(f'{x:,.0f}' for x in quiet)})"
    )
    print(f"job with saturating polling + submits: {lo:,.0f} scenarios/s (ratio {lo / q:.2f})")
    print(f"job with 20 polls/s: {pa:,.0f} scenarios/s (ratio {pa / q:.2f}; goal >= 0.90)")


if __name__ == "__main__":
    main()
