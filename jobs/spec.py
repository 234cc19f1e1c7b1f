"""Job files: what to run, on which model, how many scenarios, with which solver settings.

A job file is YAML or JSON with `schema_version`. `load_job` validates it completely before
anything runs and reports every problem with its path (`scenarios.parameters.x: ...`), so a
bad job is refused up front. The model is resolved (library name, file relative to the job
file, or inline) and embedded, so that workers and `edt resume` never need the original files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from edt_compute.convergence import StoppingRule
from edt_compute.library import read_document, validate_model
from edt_compute.model import EnterpriseModel
from edt_compute.params import base_values
from edt_compute.scenarios import MonteCarloSpec, ScenarioSpec, check_spec, scenario_count
from edt_compute.validation import SpecError, problems
from solvers.status import SolverOptions

# The largest scenario count a submitted job may ask for: far above what a cluster runs in a
# day, low enough to catch a typed extra zero or three.
MAX_SAMPLES_SETTING = "EDT_MAX_SAMPLES"
DEFAULT_MAX_SAMPLES = 10**9


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Outputs(_Spec):
    timeseries: bool = Field(default=False, description="write per-period results (long format)")


class OutOfSample(_Spec):
    samples: int = Field(
        default=1000,
        ge=0,
        le=10**7,
        description="independent scenarios (own seed stream) to evaluate the decision on; 0: none",
    )
    confidence: float = Field(default=0.95, gt=0, lt=1, description="level of the interval")


class Hedging(_Spec):
    rho: float | None = Field(
        default=None, gt=0, description="proximal weight (NPV units); default: from the data"
    )
    max_iterations: int = Field(default=100, ge=1, le=10_000)


class DecideOptions(_Spec):
    """Decide mode: one build schedule for all scenarios (two-stage stochastic program)."""

    risk_weight: float = Field(
        default=0.0, ge=0, le=1, description="w in (1 - w) E[NPV] + w CVaR_alpha(NPV)"
    )
    cvar_alpha: float = Field(
        default=0.95, gt=0, lt=1, description="CVaR is the mean of the worst 1 - alpha share"
    )
    method: Literal["auto", "enumerate", "extensive", "hedging"] = "auto"
    max_candidates: int = Field(
        default=256, ge=1, description="auto: enumerate up to this many candidate schedules"
    )
    block_size: int = Field(
        default=25,
        ge=1,
        description="scenarios per decision task (fixed: results do not"
        " depend on the worker count)",
    )
    out_of_sample: OutOfSample = Field(default_factory=OutOfSample)
    hedging: Hedging = Field(default_factory=Hedging)


class JobSpec(_Spec):
    schema_version: Literal[1] = 1
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    model: str | dict[str, Any] = Field(
        description="library model name, model file path, or inline model"
    )
    mode: Literal["simulate", "optimize", "decide"] = "simulate"
    scenarios: ScenarioSpec
    seed: int = Field(default=0, ge=0, lt=2**63)
    projects: list[str] | None = Field(
        default=None,
        description="projects evaluated against the enterprise without them (default: all)",
    )
    build_periods: dict[str, int] = Field(
        default_factory=dict,
        description="simulate mode: build period per project (default: its earliest_period)",
    )
    outputs: Outputs = Field(default_factory=Outputs)
    solver: SolverOptions = Field(default_factory=SolverOptions)
    decide: DecideOptions | None = Field(
        default=None, description="decide mode's settings (default settings when absent)"
    )
    chunk_size: int | None = Field(
        default=None, ge=1, description="scenarios per chunk (default: automatic)"
    )
    priority: int = 0
    labels: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class PreparedJob:
    """A validated job with its model resolved: everything a worker needs."""

    spec: JobSpec
    model: EnterpriseModel

    @property
    def total(self) -> int:
        return scenario_count(self.spec.scenarios)

    @property
    def stopping_rule(self) -> StoppingRule | None:
        """The adaptive run's stopping rule (Monte Carlo with `until`), else None."""
        scenarios = self.spec.scenarios
        return scenarios.stopping_rule() if isinstance(scenarios, MonteCarloSpec) else None

    @property
    def decide(self) -> DecideOptions:
        return self.spec.decide or DecideOptions()

    @property
    def projects(self) -> list[str]:
        names = [p.name for p in self.model.projects]
        return names if self.spec.projects is None else list(self.spec.projects)

    def document(self) -> dict[str, Any]:
        """The spec as stored in job.json and the registry, model embedded."""
        doc = self.spec.model_dump(mode="json")
        doc["model"] = self.model.model_dump(mode="json")
        return doc

    @property
    def spec_hash(self) -> str:
        """Hash of what determines the results; chunking is an execution detail, left out."""
        doc = self.document()
        doc.pop("chunk_size", None)
        blob = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def _resolve_model(model: str | dict[str, Any], base_dir: Path | None) -> EnterpriseModel:
    if isinstance(model, dict):
        return validate_model(model, "model", prefix="model")
    from edt_compute.library import list_models, load_model

    if model in list_models():
        return load_model(model)
    path = Path(model)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise SpecError(
            "job",
            [
                f"model: '{model}' is neither a library model ({', '.join(list_models())}) nor a file"
            ],
        )
    try:
        return load_model(path)
    except SpecError as exc:
        raise SpecError("job", [f"model ({path}): {p}" for p in exc.problems]) from None


def prepare_job(
    data: dict[str, Any],
    base_dir: Path | None = None,
    source: str = "job",
    *,
    max_scenarios: int | None = None,
) -> PreparedJob:
    """Validate a job mapping completely; SpecError lists every problem with its path.

    `max_scenarios` caps the scenario count (give `sample_cap()` where a job is submitted);
    None, as when a worker rebuilds an accepted job, applies no cap.
    """
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(source, problems(exc, data)) from None
    model = _resolve_model(spec.model, base_dir)
    errors: list[str] = []
    try:
        check_spec(spec.scenarios, base_values(model))
    except SpecError as exc:
        errors.extend(exc.problems)
    if max_scenarios is not None:
        errors += _above_cap(spec.scenarios, max_scenarios)
    names = {p.name: p for p in model.projects}
    for p in spec.projects or []:
        if p not in names:
            errors.append(f"projects: unknown project '{p}' (model has {sorted(names)})")
    selected = set(spec.projects) if spec.projects is not None else set(names)
    if spec.build_periods and spec.mode in ("optimize", "decide"):
        errors.append(f"build_periods: {spec.mode} mode chooses the build periods; remove them")
    errors += _decide_problems(spec, selected)
    for p, period in spec.build_periods.items():
        if p not in names:
            errors.append(f"build_periods.{p}: unknown project")
            continue
        if p not in selected:
            errors.append(f"build_periods.{p}: project not among the job's projects")
        proj = names[p]
        latest = proj.latest_period if proj.latest_period is not None else model.finance.horizon - 1
        if not proj.earliest_period <= period <= latest:
            errors.append(
                f"build_periods.{p}: period {period} outside the project's window"
                f" {proj.earliest_period}..{latest}"
            )
    errors += _zero_base_multipliers(spec, model)
    if errors:
        raise SpecError(source, errors)
    return PreparedJob(spec=spec, model=model)


def _decide_problems(spec: JobSpec, selected: set[str]) -> list[str]:
    from edt_compute.scenarios import ListSpec

    if spec.mode != "decide":
        return ["decide: only decide mode takes a decide block"] if spec.decide else []
    errors = []
    sc = spec.scenarios
    if not isinstance(sc, MonteCarloSpec | ListSpec):
        errors.append(f"scenarios.kind: decide mode needs monte_carlo or list, got {sc.kind}")
    elif isinstance(sc, MonteCarloSpec) and sc.until is not None:
        errors.append("scenarios.until: decide mode needs a fixed sample count")
    if not selected:
        errors.append("projects: decide mode needs at least one candidate project")
    opts = spec.decide
    if opts is not None and opts.method == "hedging" and opts.risk_weight > 0:
        errors.append("decide.method: hedging is risk-neutral; use extensive with risk_weight > 0")
    return errors


def sample_cap() -> int:
    """The scenario cap of a submitted job: the EDT_MAX_SAMPLES setting (default 1e9)."""
    raw = os.environ.get(MAX_SAMPLES_SETTING, "").strip()
    if not raw:
        return DEFAULT_MAX_SAMPLES
    try:
        value = float(raw.replace("_", ""))
    except ValueError:
        value = math.nan
    if not (value >= 1 and value.is_integer() and value < 2**63):
        raise ValueError(f"{MAX_SAMPLES_SETTING}: expected a whole number >= 1, got {raw!r}")
    return int(value)


def _above_cap(scenarios: ScenarioSpec, cap: int) -> list[str]:
    total = scenario_count(scenarios)
    if total <= cap:
        return []
    where = "scenarios.parameters"
    if isinstance(scenarios, MonteCarloSpec):
        capped_by_until = scenarios.until is not None and scenarios.until.max_samples is not None
        where = "scenarios.until.max_samples" if capped_by_until else "scenarios.samples"
    return [
        f"{where}: {total:,} scenarios exceed the cap of {cap:,}"
        f" (setting {MAX_SAMPLES_SETTING}; raise it to run more)"
    ]


def _zero_base_multipliers(spec: JobSpec, model: EnterpriseModel) -> list[str]:
    """A multiplier of a base value 0 is always 0: almost certainly not what was meant."""
    from edt_compute.scenarios import GridSpec, MonteCarloSpec, OneAtATimeSpec

    base = base_values(model)
    sc = spec.scenarios
    paths: list[str] = []
    if isinstance(sc, GridSpec | OneAtATimeSpec) and sc.mode == "multiplier":
        paths = list(sc.parameters)
    elif isinstance(sc, MonteCarloSpec):
        paths = [p for p, d in sc.parameters.items() if d.mode == "multiplier"]
    return [
        f"scenarios.parameters.{p}: mode multiplier, but the base value is 0; give absolute values"
        for p in paths
        if base.get(p) == 0.0
    ]


def _read(path: str | Path) -> tuple[Path, dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        raise SpecError(str(p), ["file not found"])
    return p, read_document(p.read_text(encoding="utf-8"), str(p))


def load_job(path: str | Path) -> PreparedJob:
    """Read and validate a job file (YAML or JSON), capped at `sample_cap()` scenarios."""
    p, data = _read(path)
    return prepare_job(data, base_dir=p.parent, source=str(p), max_scenarios=sample_cap())


# Keys only one kind of document has: a job names its model and scenarios, a model its parts.
_JOB_KEYS = {"scenarios", "model"}
_MODEL_KEYS = {"units", "resources", "finance"}


def load_document(path: str | Path) -> PreparedJob | EnterpriseModel:
    """Read and validate a job file or a model file, told apart by their top-level keys.

    Raises SpecError listing every problem (ValueError for a file that does not parse).
    """
    p, data = _read(path)
    if _JOB_KEYS & data.keys():
        return prepare_job(data, base_dir=p.parent, source=str(p), max_scenarios=sample_cap())
    if _MODEL_KEYS & data.keys():
        return validate_model(data, str(p))
    raise SpecError(
        str(p),
        [
            "neither a job file (no `scenarios` or `model`) nor a model file"
            " (no `units`, `resources` or `finance`)"
        ],
    )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def validate_file(path: str | Path) -> str:
    """The one-line summary of a valid job or model file (what `edt validate` prints).

    Raises SpecError listing every problem (ValueError for a file that does not parse).
    """
    doc = load_document(path)
    if isinstance(doc, EnterpriseModel):
        f = doc.finance
        parts = [
            _count(len(doc.units), "unit"),
            _count(len(doc.projects), "project"),
            _count(len(base_values(doc)), "parameter path"),
        ]
        return f"{path}: valid model {doc.name} ({', '.join(parts)}, {f.horizon} x {f.period})"
    count = f"{doc.total:,} scenarios"
    if doc.stopping_rule is not None:
        count = f"adaptive, {doc.stopping_rule.min_samples:,} to {doc.total:,} scenarios"
    return f"{path}: valid ({count}, mode {doc.spec.mode}, model {doc.model.name})"


def job_json_schema() -> dict[str, Any]:
    return TypeAdapter(JobSpec).json_schema()


def default_chunk_size(job: PreparedJob, workers: int) -> int:
    """Chunks big enough that dispatch stays under ~5% of compute, yet several per worker.

    A simulate-mode scenario costs ~0.1-0.5 ms and a chunk's dispatch and Parquet write a few
    ms, so chunks of >= 1000 scenarios keep the overhead small; an optimize-mode scenario costs
    ~0.1-1 s, so a few scenarios per chunk are enough and keep workers balanced.
    """
    # An adaptive run may stop at its first checkpoint: size chunks for that, not the cap,
    # so that little is computed beyond the stopping point.
    rule = job.stopping_rule
    planned = job.total if rule is None else rule.min_samples
    per_worker = math.ceil(planned / max(1, workers * 4))
    if job.spec.mode in ("optimize", "decide"):
        return max(1, min(per_worker, 8))
    return max(1, min(max(per_worker, 1000), 20000))
