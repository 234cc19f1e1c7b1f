"""Small finished jobs for the dashboard tests (Monte Carlo, optimize, adaptive, tornado), run to
completion in this process by the supervisor's JobRunner on the shared embedded Ray, so that a
server started afterwards only reads them (no scheduler, nothing left to compute)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cluster.supervisor import JobRunner
from jobs.registry import Registry
from jobs.spec import prepare_job
from jobs.status import JobStatus
from jobs.storage import ResultStore
from tests.api_support import ROOT, small_mc, small_optimize


def small_adaptive() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(
        (ROOT / "examples/jobs/methanol_adaptive.yaml").read_text()
    )
    spec["scenarios"]["method"] = "mc"
    spec["scenarios"]["until"] = {
        "targets": [
            {"metric": "npv", "statistic": "mean", "half_width": 1.0},
            {"metric": "npv", "statistic": "prob_negative", "half_width": 0.08},
        ],
        "min_samples": 64,
        "checkpoint": 32,
        "max_samples": 640,
    }
    spec["chunk_size"] = 32
    return spec


def run_jobs(root: Path, specs: dict[str, dict[str, Any]], tenant: str) -> dict[str, str]:
    """Run each spec to success with a registry and storage under `root`; name -> job id."""
    runner = JobRunner(
        Registry(f"sqlite:///{root / 'registry.db'}"), ResultStore(str(root / "results")), workers=2
    )
    ids = {}
    for name, doc in specs.items():
        record = runner.submit(prepare_job(doc), tenant=tenant)
        final = runner.run(record.id)
        assert final.status is JobStatus.SUCCEEDED, (name, final.error)
        ids[name] = record.id
    return ids


def dashboard_jobs(root: Path, tenant: str = "acme") -> dict[str, str]:
    """Monte Carlo, optimize and adaptive jobs, and a one-at-a-time tornado (13 scenarios)."""
    tornado = yaml.safe_load((ROOT / "examples/jobs/methanol_tornado.yaml").read_text())
    return run_jobs(
        root,
        {
            "mc": small_mc(samples=300, chunk_size=100, labels={"owner": "strategy"}),
            "optimize": small_optimize(chunk_size=4) | {"labels": {"owner": "planning"}},
            "adaptive": small_adaptive(),
            "tornado": tornado,
        },
        tenant,
    )
