"""End-to-end Monte Carlo throughput: `edt run` against EMA Workbench, same model, same draws.

Both sides run the bundled simulate-mode job (examples/jobs/methanol_mc.yaml: model
methanol_ammonia, 6 sampled parameters, incremental NPV of methanol_debottleneck) on 2 workers:

- EDT: `edt run JOB --workers 2` as a subprocess, timed wall-clock from process start to exit
  (interpreter start, Ray start-up, chunk evaluation, Parquet writes, summary.json, shutdown).
  The scenario table is read back afterwards and must hold N rows, ids 0..N-1.
- EMA: an ema_workbench `Model` whose function evaluates ONE scenario per call with the EDT
  kernel (compile_model with S=1, simulate with and without the project, finance.npv), run by
  `MultiprocessingEvaluator(model, n_processes=2)` over the SAME experiments (EDT's sampler
  output for ids 0..n-1, handed to EMA as a list of `Scenario`). EMA is timed on a subset of
  --ema-subset scenarios, pool start-up included, and scaled linearly to N: pool start-up +
  run time x N / subset (the fastest of --ema-repeat runs: the least disturbed by other load,
  which favours EMA since the single EDT run gets no such choice). Its NPVs must equal the NPVs in EDT's Parquet output for those ids.
  The EMA function computes only the NPV; EDT computes all six metrics and enterprise_npv, so
  the ratio is conservative.

Goal (issue): >= 20x at 1,000,000 samples end-to-end.

    pip install -e '.[bench]'
    python benchmarks/vs_ema.py [--samples 10000,1000000] [--ema-subset 2000] [--ema-repeat 2]
                                [--workers 2] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import yaml

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edt_compute import finance
from edt_compute.compiled import compile_model
from edt_compute.simulation import simulate
from jobs.evaluate import ChunkEvaluator
from jobs.spec import PreparedJob, load_job

ROOT = Path(__file__).resolve().parents[1]
JOB_FILE = ROOT / "examples" / "jobs" / "methanol_mc.yaml"
GOAL = 20.0
TOLERANCE = 1e-9


# --- the EMA side: one scenario per call --------------------------------------------------


@dataclass(frozen=True)
class SingleScenarioKernel:
    """The EDT kernel called for one scenario at a time, as a per-scenario EMA model does."""

    job: PreparedJob
    builds: np.ndarray  # (1, P): build period of the job's projects, -1 elsewhere
    incremental: bool

    @classmethod
    def of(cls, job: PreparedJob) -> SingleScenarioKernel:
        projects = job.model.projects
        builds = np.full((1, len(projects)), -1, dtype=np.int64)
        for name in job.projects:
            p = [q.name for q in projects].index(name)
            builds[0, p] = job.spec.build_periods.get(name, projects[p].earliest_period)
        return cls(job, builds, bool(job.projects))

    def npv(self, values: dict[str, float]) -> float:
        scalars = {path: np.array([v], dtype=np.float64) for path, v in values.items()}
        cm = compile_model(self.job.model, 1, scalars=scalars)
        with_p = simulate(cm, self.builds)
        cash = with_p.fcf - simulate(cm).fcf if self.incremental else with_p.fcf
        rate = finance.period_rate(cm.discount_rate, cm.periods_per_year)
        return float(finance.npv(rate, np.ascontiguousarray(cash))[0])


@functools.lru_cache(maxsize=4)
def _kernel(job_file: str) -> SingleScenarioKernel:
    return SingleScenarioKernel.of(load_job(job_file))


def edt_single_scenario(job_file: str, **values: float) -> dict[str, float]:
    """EMA model function (module level, so that pool workers can import it)."""
    return {"npv": _kernel(job_file).npv(values)}


def _ema_name(path: str) -> str:
    return path.replace(".", "__")


def run_ema(
    job_file: Path, inputs: dict[str, np.ndarray], workers: int
) -> tuple[Any, float, float]:
    """EMA Workbench on the given experiments: (npv per experiment, pool start s, run s)."""
    with warnings.catch_warnings():  # "ipyparallel not installed": not used here
        warnings.simplefilter("ignore", UserWarning)
        from ema_workbench import (
            Constant,
            Model,
            MultiprocessingEvaluator,
            RealParameter,
            ScalarOutcome,
            Scenario,
        )

    n = len(next(iter(inputs.values())))
    model = Model("edtmethanol", function=edt_single_scenario)
    model.uncertainties = [
        RealParameter(_ema_name(path), float(v.min()), float(v.max()) + 1e-12, variable_name=path)
        for path, v in inputs.items()
    ]
    model.constants = [Constant("job_file", str(job_file))]
    model.outcomes = [ScalarOutcome("npv")]
    t0 = time.perf_counter()
    scenarios = [
        Scenario(i, **{_ema_name(p): float(v[i]) for p, v in inputs.items()}) for i in range(n)
    ]
    evaluator = MultiprocessingEvaluator(model, n_processes=workers)
    with evaluator:
        t1 = time.perf_counter()
        experiments, outcomes = evaluator.perform_experiments(
            scenarios=scenarios,
            log_progress=True,  # log (silently), not a tqdm bar
        )
    t2 = time.perf_counter()
    order = np.argsort(experiments["scenario"].to_numpy(dtype=np.int64))
    return np.asarray(outcomes["npv"], dtype=np.float64)[order], t1 - t0, t2 - t1


# --- the EDT side: the `edt run` command ----------------------------------------------------


@dataclass
class EdtRun:
    wall_seconds: float
    job_seconds: float  # manifest started_at -> finished_at (chunks, summary)
    chunks: int
    npv: np.ndarray  # by scenario_id


def run_edt(job_path: Path, work: Path, n: int, workers: int) -> EdtRun:
    edt = Path(sys.executable).with_name("edt")
    cmd = [
        str(edt) if edt.exists() else "edt",
        "run",
        str(job_path),
        "--workers",
        str(workers),
        "--storage",
        str(work / "results"),
        "--registry",
        f"sqlite:///{work / 'r.db'}",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"edt run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    (job_dir,) = (work / "results" / "jobs").iterdir()
    table = pq.read_table(job_dir / "scenarios", columns=["scenario_id", "status", "npv"])
    ids = table.column("scenario_id").to_numpy()
    if table.num_rows != n or not np.array_equal(np.sort(ids), np.arange(n)):
        sys.exit(f"edt run: {table.num_rows} scenario rows, expected ids 0..{n - 1}")
    failed = int(np.sum(table.column("status").to_numpy(zero_copy_only=False) != "ok"))
    if failed:
        sys.exit(f"edt run: {failed} scenarios did not finish ok")
    npv = np.empty(n)
    npv[ids] = table.column("npv").to_numpy()
    manifest = json.loads((job_dir / "manifest.json").read_text())
    job_seconds = (
        datetime.fromisoformat(manifest["finished_at"])
        - datetime.fromisoformat(manifest["started_at"])
    ).total_seconds()
    return EdtRun(wall, job_seconds, len(manifest["chunks"]), npv)


# --- the comparison -------------------------------------------------------------------------


def _label(n: int) -> str:
    exp = round(float(np.log10(n)))
    return f"1e{exp}" if 10**exp == n else str(n)


def write_job(n: int, work: Path) -> Path:
    doc = yaml.safe_load(JOB_FILE.read_text(encoding="utf-8"))
    doc["scenarios"]["samples"] = n
    doc["name"] = f"{doc['name']}-{n}"
    path = work / "job.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def check_kernel_agrees(job_path: Path, ids: np.ndarray) -> None:
    """Same inputs -> same NPV: the per-scenario EMA function against EDT's chunk evaluator."""
    ev = ChunkEvaluator(load_job(job_path))
    inputs = ev.inputs(ids)
    edt = ev.evaluate(ids).scenarios.column("npv").to_numpy()
    for row, sid in enumerate(ids):
        one = edt_single_scenario(
            str(job_path), **{p: float(v[row]) for p, v in inputs.scalars.items()}
        )["npv"]
        if not abs(one - edt[row]) <= TOLERANCE * max(1.0, abs(edt[row])):
            sys.exit(f"scenario {sid}: EMA-side npv {one!r} != EDT npv {edt[row]!r}")


def compare(n: int, subset: int, ema_repeat: int, workers: int, root: Path) -> float:
    work = root / f"n{n}"
    work.mkdir()
    job_path = write_job(n, work)
    job = load_job(job_path)
    if job.spec.mode != "simulate":
        sys.exit("this benchmark expects a simulate-mode job")
    check_kernel_agrees(job_path, np.array([0, 1, 2, n // 2, n - 1], dtype=np.int64))

    edt = run_edt(job_path, work, n, workers)
    edt_rate = n / edt.wall_seconds
    print(
        f"N={n:,}: edt run --workers {workers}: {edt.wall_seconds:.1f} s wall "
        f"(job {edt.job_seconds:.1f} s from started_at to finished_at: Ray start-up, "
        f"{edt.chunks} chunk{'s' if edt.chunks != 1 else ''}, summary; the rest: interpreter, imports, submit, Ray shutdown)",
        flush=True,
    )

    m = min(subset, n)
    inputs = ChunkEvaluator(job).inputs(np.arange(m, dtype=np.int64))
    if inputs.series:
        sys.exit("this benchmark expects scalar parameters only")
    runs = [run_ema(job_path, inputs.scalars, workers) for _ in range(ema_repeat)]
    diff = np.zeros(m)
    for ema_npv, _, _ in runs:
        diff = np.maximum(diff, np.abs(ema_npv - edt.npv[:m]))
        if not np.all(diff <= TOLERANCE * np.maximum(1.0, np.abs(edt.npv[:m]))):
            i = int(np.argmax(diff))
            sys.exit(f"scenario {i}: EMA npv {ema_npv[i]!r} != EDT npv {edt.npv[i]!r}")
    _, t_start, t_run = min(runs, key=lambda r: r[1] + r[2])
    ema_seconds = t_start + t_run * n / m
    ema_rate = n / ema_seconds
    best = f"fastest of {ema_repeat} runs, " if ema_repeat > 1 else ""
    scaled = (
        f"timed on the first {m:,} of the N experiments ({best}each with its own pool) "
        "and scaled linearly to N "
        f"({t_start:.2f} s pool start-up + {t_run:.1f} s x {n / m:,.0f} = {ema_seconds:,.0f} s)"
        if m < n
        else f"all N experiments ({best}{t_start:.2f} s pool start-up + {t_run:.1f} s)"
    )
    print(
        f"N={n:,}: EMA MultiprocessingEvaluator n_processes={workers}, one scenario per call: "
        f"{scaled}; NPVs equal EDT's Parquet output on all {m:,} (max |diff| {diff.max():.1e})",
        flush=True,
    )
    ratio = edt_rate / ema_rate
    print(
        f"N={n:,}: edt_scen_per_s={edt_rate:,.0f} ema_scen_per_s={ema_rate:,.1f} ratio={ratio:.1f}",
        flush=True,
    )
    return ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", default="10000,1000000", help="comma-separated sample counts")
    ap.add_argument("--ema-subset", type=int, default=2000, help="experiments EMA is timed on")
    ap.add_argument("--ema-repeat", type=int, default=2, help="EMA subset runs; the fastest counts")
    ap.add_argument("--workers", type=int, default=2, help="EDT workers and EMA processes")
    ap.add_argument(
        "--workdir", type=Path, default=None, help="keep jobs and results under this folder"
    )
    args = ap.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.samples.split(",") if s.strip()]
    if not sizes or min(sizes) < 1 or min(args.ema_subset, args.ema_repeat, args.workers) < 1:
        ap.error("--samples, --ema-subset, --ema-repeat and --workers must be positive")

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="edt-vs-ema-", dir=args.workdir))
    print(
        f"job {JOB_FILE.relative_to(ROOT)} (samples overridden), {args.workers} workers each side; "
        f"EDT timed end-to-end (one run), EMA timed on {args.ema_subset:,} experiments "
        f"(fastest of {args.ema_repeat}) and scaled",
        flush=True,
    )
    print(f"load average before: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)", flush=True)
    try:
        ratios = {
            n: compare(n, args.ema_subset, args.ema_repeat, args.workers, root) for n in sizes
        }
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    n = max(ratios)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"goal: >= {GOAL:.0f}x at 1e6; ratio at {_label(n)} / goal = {ratios[n] / GOAL:.2f}")
    print(f"vs_ema_ratio_{_label(n)}={ratios[n]:.1f}")


if __name__ == "__main__":
    main()
