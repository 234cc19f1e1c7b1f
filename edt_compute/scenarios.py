"""Scenario sets: explicit lists, grids, one-at-a-time ranges and Monte Carlo samples.

A spec (the `scenarios:` section of a job file, discriminated by `kind`) defines N scenarios.
`generate` produces the inputs of any subset of them, addressed by scenario id in 0..N-1, and a
scenario's inputs depend only on (seed, id) and the spec: any split of the ids into chunks, in
any order, gives bit-identical values. Parameters are addressed by the dotted paths of
`edt_compute.params`.

Kinds and scenario order:
- `list`: `scenarios: [{name, overrides: {path: value}}]`, in the order given.
- `grid`: full factorial of `parameters: {path: [values]}`, row-major: the first parameter
  varies slowest, the last fastest (like itertools.product).
- `one_at_a_time`: `parameters: {path: {low, high}}`. Scenario 0 is the base case, then for each
  parameter in the order given its low then its high, with the others at base.
- `monte_carlo`: `samples` draws of `parameters: {path: Distribution}` and
  `processes: {path: PriceProcess}`, by `method` mc (Philox streams), lhs (one Latin hypercube
  of all samples, built per index: `edt_compute.sampling`) or sobol (one scrambled Sobol
  sequence; balanced only when samples is a power of 2). Dimensions of a draw: the parameters
  in the order given, then horizon - 1 normals per process path in the order given. With
  `until` (an adaptive run, `edt_compute.convergence`) the ids run up to the cap
  `until.max_samples` (or `samples`), lhs stays one design of that many points, and sobol
  becomes randomised QMC: scenario i is point i // R of replicate i % R, one of R
  independently scrambled sequences.

`mode: multiplier` (grid, one_at_a_time, each distribution) multiplies the base value.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import special

from edt_compute.convergence import StoppingRule, Until
from edt_compute.correlation import Correlation
from edt_compute.distributions import Distribution, ValueMode
from edt_compute.domains import UNBOUNDED, Domain, domain_of, fmt, inward, leaves
from edt_compute.params import ParameterError, is_series_path
from edt_compute.processes import PriceProcess
from edt_compute.sampling import open_unit, uniforms
from edt_compute.validation import SpecError


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NamedScenario(_Spec):
    name: str = Field(min_length=1)
    overrides: dict[str, float] = Field(default_factory=dict, description="path -> absolute value")


class ListSpec(_Spec):
    kind: Literal["list"]
    scenarios: list[NamedScenario] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> ListSpec:
        names = [s.name for s in self.scenarios]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"scenarios: duplicate names {dup}")
        return self


class GridSpec(_Spec):
    kind: Literal["grid"]
    mode: ValueMode = "absolute"
    parameters: dict[str, list[float]] = Field(min_length=1, description="path -> values")

    @model_validator(mode="after")
    def _non_empty(self) -> GridSpec:
        empty = [p for p, v in self.parameters.items() if not v]
        if empty:
            raise ValueError(f"parameters: no values given for {empty}")
        return self


class Range(_Spec):
    low: float
    high: float


class OneAtATimeSpec(_Spec):
    kind: Literal["one_at_a_time"]
    mode: ValueMode = "absolute"
    parameters: dict[str, Range] = Field(min_length=1, description="path -> {low, high}")


class MonteCarloSpec(_Spec):
    kind: Literal["monte_carlo"]
    samples: int | None = Field(
        default=None,
        ge=1,
        description="number of samples; with `until`, the cap (or give until.max_samples)",
    )
    method: Literal["mc", "lhs", "sobol"] = Field(
        default="mc", description="sobol: use a power of 2 for samples to keep its balance"
    )
    parameters: dict[str, Distribution] = Field(default_factory=dict)
    correlation: Correlation | None = None
    processes: dict[str, PriceProcess] = Field(default_factory=dict)
    until: Until | None = Field(
        default=None, description="run until these precision targets are met (adaptive)"
    )

    @model_validator(mode="after")
    def _check(self) -> MonteCarloSpec:
        if not self.parameters and not self.processes:
            raise ValueError("parameters: give at least one distribution (or a process)")
        if self.until is None and self.samples is None:
            raise ValueError("samples: give the number of samples (or an `until` stopping rule)")
        if self.until is not None:
            self.stopping_rule()  # raises ValueError naming the conflicting fields
        both = sorted(set(self.parameters) & set(self.processes))
        if both:
            raise ValueError(f"processes: {both} also sampled in parameters; give one or the other")
        if self.correlation is not None:
            missing = [p for p in self.correlation.parameters if p not in self.parameters]
            if missing:
                raise ValueError(
                    f"correlation.parameters: {missing} not among the sampled parameters"
                )
        return self

    @property
    def total(self) -> int:
        """Scenario ids are 0..total-1: the sample count, or the cap of an adaptive run."""
        rule = self.stopping_rule()
        if rule is not None:
            return rule.max_samples
        assert self.samples is not None  # the validator requires one or the other
        return self.samples

    def stopping_rule(self) -> StoppingRule | None:
        """The resolved `until` rule, or None for a fixed sample count."""
        if self.until is None:
            return None
        return StoppingRule.resolve(self.until, self.samples, self.method)

    @property
    def rqmc_replicates(self) -> int | None:
        """Sobol with `until`: independently scrambled replicates (randomised QMC)."""
        rule = self.stopping_rule()
        return rule.replicates if rule is not None else None


ScenarioSpec = Annotated[
    ListSpec | GridSpec | OneAtATimeSpec | MonteCarloSpec, Field(discriminator="kind")
]


@dataclass(frozen=True)
class ScenarioInputs:
    """Inputs of some scenarios, rows aligned with `scenario_ids`.

    `scalars[path]` (n,) and `series[path]` (n, horizon) are absolute values to set (multipliers
    already applied). `columns` is what the scenario table shows: label columns
    (`scenario_name`; `oat_parameter`, `oat_level`), then one per varied scalar path and
    `f"{path}.mean"` (mean over periods) per series path.
    """

    scenario_ids: np.ndarray
    scalars: dict[str, np.ndarray]
    series: dict[str, np.ndarray]
    columns: dict[str, np.ndarray]


def scenario_count(spec: ScenarioSpec) -> int:
    if isinstance(spec, ListSpec):
        return len(spec.scenarios)
    if isinstance(spec, GridSpec):
        return math.prod(len(v) for v in spec.parameters.values())
    if isinstance(spec, OneAtATimeSpec):
        return 1 + 2 * len(spec.parameters)
    return spec.total


def _path_errors(spec: ScenarioSpec, base: Mapping[str, float]) -> list[str]:
    errors: list[str] = []
    if isinstance(spec, ListSpec):
        for i, sc in enumerate(spec.scenarios):
            errors += [
                f"scenarios.scenarios[{i}].overrides.{p}: unknown parameter path"
                for p in sc.overrides
                if p not in base
            ]
        return errors
    errors += [
        f"scenarios.parameters.{p}: unknown parameter path"
        for p in spec.parameters
        if p not in base
    ]
    if isinstance(spec, MonteCarloSpec):
        for p, proc in spec.processes.items():
            where = f"scenarios.processes.{p}"
            if p not in base:
                errors.append(f"{where}: unknown parameter path")
            elif not is_series_path(p):
                errors.append(
                    f"{where}: not a per-period price path (processes apply to markets.*.price)"
                )
            elif (problem := proc.problem(base[p])) is not None:
                errors.append(f"{where}: {problem}")
    return errors


def check_spec(spec: ScenarioSpec, base: Mapping[str, float]) -> None:
    """Raise SpecError (a ValueError) listing every path the model cannot take and every
    value that can leave its parameter's domain (`edt_compute.domains`).

    Warns (UserWarning) when a Sobol design's sample count is not a power of 2.
    """
    errors = _path_errors(spec, base)
    errors += _domain_errors(spec, base)
    if errors:
        raise SpecError("scenarios", errors)
    if (
        isinstance(spec, MonteCarloSpec)
        and spec.method == "sobol"
        and spec.until is None
        and spec.total & (spec.total - 1)
    ):
        warnings.warn(
            f"scenarios.samples: {spec.total} is not a power of 2; Sobol points are balanced"
            " only for powers of 2 (e.g. 1024, 4096)",
            UserWarning,
            stacklevel=2,
        )


def _domain_errors(spec: ScenarioSpec, base: Mapping[str, float]) -> list[str]:
    """Values a spec can give that their parameter's domain refuses (unknown paths skipped)."""
    if isinstance(spec, ListSpec):
        return [
            f"scenarios.scenarios[{i}].overrides.{p}: {fmt(v)} leaves the domain {dom} of {p}"
            for i, sc in enumerate(spec.scenarios)
            for p, v in sc.overrides.items()
            if p in base and not (dom := domain_of(p)).holds(v)
        ]
    errors: list[str] = []
    for p in spec.parameters:
        dom = domain_of(p) if p in base else UNBOUNDED
        if not dom.bounded:
            continue
        where, b = f"scenarios.parameters.{p}", base[p]
        points: list[tuple[str, float]]
        if isinstance(spec, MonteCarloSpec):
            errors += _distribution_error(where, p, spec.parameters[p], b, dom)
            continue
        if isinstance(spec, GridSpec):
            points = [(str(i), v) for i, v in enumerate(spec.parameters[p])]
        else:
            rng = spec.parameters[p]
            points = [("low", rng.low), ("high", rng.high)]
        for label, v in points:
            x = _scale(spec.mode, v, b)
            if not dom.holds(x):
                shown = fmt(x)
                if spec.mode == "multiplier":
                    shown = f"{fmt(v)} x base {fmt(b)} = {shown}"
                errors.append(f"{where}[{label}]: {shown} leaves the domain {dom} of {p}")
    if isinstance(spec, MonteCarloSpec):
        for p, proc in spec.processes.items():
            dom = domain_of(p) if p in base and is_series_path(p) else UNBOUNDED
            low, high, attained = proc.support(base.get(p, 0.0))
            if leaves(dom, low, high, attained=attained):
                hint = (
                    "use log: true, which keeps prices > 0"
                    if proc.process == "ou"
                    else "start it (s0) inside the domain"
                )
                errors.append(
                    f"scenarios.processes.{p}: {proc.process} paths span [{fmt(low)},"
                    f" {fmt(high)}], which leaves the domain {dom} of {p}; {hint}"
                )
    return errors


def _distribution_error(
    where: str, path: str, dist: Distribution, base: float, dom: Domain
) -> list[str]:
    low, high = dist.support()
    factor = base if dist.mode == "multiplier" else 1.0
    if factor == 0.0:
        return []  # a multiplier of 0 is refused on its own (jobs.spec)
    a_low, a_high = sorted((low * factor, high * factor))
    if not leaves(dom, a_low, a_high, attained=dist.attains_support_ends):
        return []
    shown = f"[{fmt(low)}, {fmt(high)}]"
    if factor != 1.0:
        shown += f" x base {fmt(base)} = [{fmt(a_low)}, {fmt(a_high)}]"
    problem = f"{where}: {dist.dist} support {shown} leaves the domain {dom} of {path}"
    if dist.attains_support_ends:
        return [f"{problem}; drop the values outside it"]
    # The truncation that fits, in the distribution's own units, intersected with any given.
    t_low, t_high = sorted((dom.low / factor, dom.high / factor))
    given_low, given_high = dist.bounds()
    t_low = max(inward(t_low, up=True), given_low)
    t_high = min(inward(t_high, up=False), given_high)
    bounds = ", ".join("null" if math.isinf(t) else fmt(t) for t in (t_low, t_high))
    return [f"{problem}; truncate it (truncate: [{bounds}]) or narrow it"]


def generate(
    spec: ScenarioSpec,
    base: Mapping[str, float],
    *,
    horizon: int,
    periods_per_year: int,
    seed: int,
    ids: np.ndarray,
) -> ScenarioInputs:
    """Inputs of the scenarios `ids` (any order, any subset of 0..N-1)."""
    if horizon < 1 or periods_per_year < 1:
        raise ValueError(
            f"horizon ({horizon}) and periods_per_year ({periods_per_year}) must be >= 1"
        )
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    arr = np.asarray(ids)
    if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(
            f"ids must be a 1-d integer array, got dtype {arr.dtype} shape {arr.shape}"
        )
    sid = arr.astype(np.int64)
    n_total = scenario_count(spec)
    if sid.size and (sid.min() < 0 or sid.max() >= n_total):
        raise ValueError(f"ids must lie in 0..{n_total - 1}, got {sid.min()}..{sid.max()}")
    errors = _path_errors(spec, base)
    if errors:
        raise ParameterError(*errors)
    if isinstance(spec, ListSpec):
        return _generate_list(spec, base, sid)
    if isinstance(spec, GridSpec):
        return _generate_grid(spec, base, sid)
    if isinstance(spec, OneAtATimeSpec):
        return _generate_oat(spec, base, sid)
    return _generate_mc(spec, base, sid, horizon, 1.0 / periods_per_year, seed)


def _scale(mode: ValueMode, value: float, base: float) -> float:
    return value * base if mode == "multiplier" else value


def _generate_list(spec: ListSpec, base: Mapping[str, float], ids: np.ndarray) -> ScenarioInputs:
    paths = list(dict.fromkeys(p for sc in spec.scenarios for p in sc.overrides))
    table = np.array(
        [[sc.overrides.get(p, base[p]) for p in paths] for sc in spec.scenarios], dtype=np.float64
    )
    names = np.array([sc.name for sc in spec.scenarios], dtype=object)
    scalars = {p: table[ids, j] for j, p in enumerate(paths)}
    return ScenarioInputs(ids, scalars, {}, {"scenario_name": names[ids], **scalars})


def _generate_grid(spec: GridSpec, base: Mapping[str, float], ids: np.ndarray) -> ScenarioInputs:
    shape = tuple(len(v) for v in spec.parameters.values())
    # C order of unravel_index is row-major: the last parameter varies fastest.
    positions = np.unravel_index(ids, shape) if ids.size else tuple(ids for _ in shape)
    scalars = {}
    for (p, values), pos in zip(spec.parameters.items(), positions, strict=True):
        levels = np.array([_scale(spec.mode, v, base[p]) for v in values], dtype=np.float64)
        scalars[p] = levels[pos]
    return ScenarioInputs(ids, scalars, {}, dict(scalars))


def _generate_oat(
    spec: OneAtATimeSpec, base: Mapping[str, float], ids: np.ndarray
) -> ScenarioInputs:
    # Scenario 1 + 2k is parameter k at low, 2 + 2k at high; scenario 0 is the base case.
    varied = np.where(ids > 0, (ids - 1) // 2, -1)
    high = (ids > 0) & ((ids - 1) % 2 == 1)
    paths = list(spec.parameters)
    scalars = {}
    for k, (p, rng) in enumerate(spec.parameters.items()):
        col = np.full(ids.shape, float(base[p]))
        lo, hi = _scale(spec.mode, rng.low, base[p]), _scale(spec.mode, rng.high, base[p])
        col[varied == k] = np.where(high[varied == k], hi, lo)
        scalars[p] = col
    labels = np.array(["", *paths], dtype=object)[varied + 1]
    level = np.where(ids == 0, "base", np.where(high, "high", "low")).astype(object)
    return ScenarioInputs(
        ids, scalars, {}, {"oat_parameter": labels, "oat_level": level, **scalars}
    )


def _generate_mc(
    spec: MonteCarloSpec,
    base: Mapping[str, float],
    ids: np.ndarray,
    horizon: int,
    dt: float,
    seed: int,
) -> ScenarioInputs:
    n_params = len(spec.parameters)
    n_steps = max(horizon - 1, 0)
    d = n_params + n_steps * len(spec.processes)
    u = uniforms(spec.method, spec.total, d, seed, ids, spec.rqmc_replicates)
    if spec.correlation is not None:
        rows = [list(spec.parameters).index(p) for p in spec.correlation.parameters]
        u[rows] = open_unit(spec.correlation.apply(u[rows].T).T)
    scalars = {p: d.sample(u[j], base[p]) for j, (p, d) in enumerate(spec.parameters.items())}
    series: dict[str, np.ndarray] = {}
    means: dict[str, np.ndarray] = {}
    for k, (p, proc) in enumerate(spec.processes.items()):
        start = n_params + k * n_steps
        z = special.ndtri(u[start : start + n_steps].T)
        series[p] = proc.simulate(z, base[p], dt)
        means[f"{p}.mean"] = _row_mean(series[p])
    return ScenarioInputs(ids, scalars, series, {**scalars, **means})


def _row_mean(x: np.ndarray) -> np.ndarray:
    # Column-by-column sums round the same way whatever the number of rows, which a
    # vectorised reduction does not promise.
    total = np.zeros(x.shape[0])
    for t in range(x.shape[1]):
        total += x[:, t]
    return total / x.shape[1]
