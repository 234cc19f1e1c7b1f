"""Parameter domains: one definition (the model's fields), enforced when a job is validated."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from edt_compute import scenarios
from edt_compute.domains import Domain, domain_of
from edt_compute.library import load_model
from edt_compute.model import EnterpriseModel
from edt_compute.params import base_values
from edt_compute.validation import SpecError
from jobs.spec import (
    DEFAULT_MAX_SAMPLES,
    load_job,
    prepare_job,
    sample_cap,
    validate_file,
)

AVAIL = "units.methanol_synthesis.availability"
MODEL = load_model("methanol_ammonia")
BASE = base_values(MODEL)
LIBRARY = Path(__file__).resolve().parents[1] / "edt_compute" / "library"


def job(scenarios_: dict[str, Any]) -> dict[str, Any]:
    return {"schema_version": 1, "name": "t", "model": "methanol_ammonia", "scenarios": scenarios_}


def mc(parameters: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return job({"kind": "monte_carlo", "samples": 64, "parameters": parameters, **extra})


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        prepare_job(data)
    return info.value.problems


# --- the domain is the model's own -------------------------------------------------------------


def _set(doc: dict[str, Any], path: str, value: float) -> None:
    parts = path.split(".")
    if parts[0] == "finance":
        doc["finance"][parts[1]] = value
        return
    item = next(x for x in doc[parts[0]] if x["name"] == parts[1])
    if len(parts) == 4:
        item[parts[2]][parts[3]] = value
        return
    item[parts[2]] = value
    # Keep partners of cross-field rules out of the way: only the path's own domain is probed.
    if path.startswith("storages.") and parts[2] == "capacity":
        item["initial"] = 0.0
    if path.startswith("storages.") and parts[2] == "initial":
        item["capacity"] = 1e12
    if path.startswith("markets.") and parts[2] == "min_volume":
        item["max_volume"] = None
    if path.startswith("markets.") and parts[2] == "max_volume":
        item["min_volume"] = 0.0


def _accepts(path: str, value: float) -> bool:
    doc = copy.deepcopy(MODEL.model_dump(mode="json"))
    _set(doc, path, value)
    try:
        EnterpriseModel.model_validate(doc)
    except ValidationError:
        return False
    return True


def _probes(d: Domain) -> list[float]:
    out = []
    for bound in (d.low, d.high):
        if math.isfinite(bound):
            step = 1e-9 * (1 + abs(bound))
            out += [bound - step, bound, bound + step]
    if math.isinf(d.low):
        out.append(-1e6)
    if math.isinf(d.high):
        out.append(1e6)
    return out


@pytest.mark.parametrize("path", sorted(BASE))
def test_each_paths_domain_is_what_the_model_itself_accepts(path: str) -> None:
    d = domain_of(path)
    for x in _probes(d):
        assert d.holds(x) == _accepts(path, x), f"{path} = {x}, domain {d}"


def test_domains_read_from_the_fields_constraints() -> None:
    assert str(domain_of(AVAIL)) == "[0, 1]"
    assert str(domain_of("units.reformer.capacity")) == "[0, inf)"
    assert str(domain_of("projects.methanol_debottleneck.capacity")) == "(0, inf)"
    assert str(domain_of("finance.tax_rate")) == "[0, 1)"
    assert str(domain_of("units.reformer.inputs.natural_gas")) == "(0, inf)"
    assert not domain_of("markets.co2_emissions.price").bounded  # a disposal cost is < 0


# --- distributions -------------------------------------------------------------------------------

TRIANGULAR = {"dist": "triangular", "low": -0.5, "most_likely": 0.9, "high": 1.5}


def test_an_out_of_domain_triangular_is_refused_naming_path_domain_and_support() -> None:
    assert problems(mc({AVAIL: TRIANGULAR})) == [
        f"scenarios.parameters.{AVAIL}: triangular support [-0.5, 1.5] leaves the domain"
        f" [0, 1] of {AVAIL}; truncate it (truncate: [0, 1]) or narrow it"
    ]


def test_the_same_triangular_truncated_into_the_domain_is_accepted() -> None:
    assert prepare_job(mc({AVAIL: {**TRIANGULAR, "truncate": [0, 1]}})).total == 64


def test_the_issues_triangular_without_a_peak_is_refused() -> None:
    text = "\n".join(problems(mc({AVAIL: {"dist": "triangular", "low": -0.5, "high": 1.5}})))
    assert "most_likely" in text


@pytest.mark.parametrize("mode", ["absolute", "multiplier"])
def test_a_normal_on_an_availability_is_refused_unless_truncated(mode: str) -> None:
    mean = 1.0 if mode == "multiplier" else 0.9
    normal = {"dist": "normal", "mean": mean, "std": 0.05, "mode": mode}
    (problem,) = problems(mc({AVAIL: normal}))
    assert "normal support [-inf, inf]" in problem and "[0, 1]" in problem
    hint = re.search(r"truncate: \[([^,]+), ([^\]]+)\]", problem)
    assert hint is not None
    truncated = {**normal, "truncate": [float(hint[1]), float(hint[2])]}
    assert prepare_job(mc({AVAIL: truncated})).total == 64


def test_a_multiplier_support_is_scaled_by_the_base_value() -> None:
    # 1.1 x 0.92 = 1.012 > 1, although 1.1 is a harmless-looking multiplier.
    tri = {"dist": "triangular", "low": 0.9, "most_likely": 1.0, "high": 1.1, "mode": "multiplier"}
    (problem,) = problems(mc({AVAIL: tri}))
    assert "[0.9, 1.1] x base 0.92 = [0.828, 1.012]" in problem
    (problem,) = problems(mc({AVAIL: {**tri, "truncate": [0.9, 1.1]}}))  # still outside
    assert "truncate: [0.9, 1.08695]" in problem


def test_an_unbounded_support_fits_a_half_line_when_it_is_positive() -> None:
    lognormal = {"dist": "lognormal", "mean": 1.0, "std": 0.3, "mode": "multiplier"}
    uniform = {"dist": "uniform", "low": 0.0, "high": 40.0}  # its end 0 is never drawn
    prepare_job(mc({"units.reformer.capacity": lognormal}))
    prepare_job(mc({"projects.methanol_debottleneck.capacity": uniform}))


def test_a_discrete_value_on_a_strict_bound_is_refused() -> None:
    discrete = {"dist": "discrete", "values": [0.0, 25.0], "probabilities": [0.5, 0.5]}
    (problem,) = problems(mc({"projects.methanol_debottleneck.capacity": discrete}))
    assert "discrete support [0, 25] leaves the domain (0, inf)" in problem


def test_every_out_of_domain_parameter_is_reported_at_once() -> None:
    found = problems(
        mc(
            {
                AVAIL: TRIANGULAR,
                "finance.tax_rate": {"dist": "uniform", "low": 0.2, "high": 1.2},
                "units.reformer.fixed_cost": {"dist": "normal", "mean": 6, "std": 1},
            }
        )
    )
    assert [p.split(":")[0] for p in found] == [
        f"scenarios.parameters.{AVAIL}",
        "scenarios.parameters.finance.tax_rate",
        "scenarios.parameters.units.reformer.fixed_cost",
    ]


# --- grid, one-at-a-time, list -----------------------------------------------------------------


def test_grid_one_at_a_time_and_list_values_out_of_domain_are_refused() -> None:
    grid = job({"kind": "grid", "mode": "multiplier", "parameters": {AVAIL: [0.9, 1.0, 1.1]}})
    assert problems(grid) == [
        f"scenarios.parameters.{AVAIL}[2]: 1.1 x base 0.92 = 1.012 leaves the domain [0, 1]"
        f" of {AVAIL}"
    ]
    oat = job({"kind": "one_at_a_time", "parameters": {AVAIL: {"low": -0.1, "high": 0.97}}})
    assert problems(oat) == [
        f"scenarios.parameters.{AVAIL}[low]: -0.1 leaves the domain [0, 1] of {AVAIL}"
    ]
    listed = job(
        {
            "kind": "list",
            "scenarios": [
                {"name": "ok", "overrides": {AVAIL: 1.0}},
                {"name": "bad", "overrides": {"finance.tax_rate": 1.0}},
            ],
        }
    )
    assert problems(listed) == [
        "scenarios.scenarios[1].overrides.finance.tax_rate: 1 leaves the domain [0, 1)"
        " of finance.tax_rate"
    ]


def test_grid_one_at_a_time_and_list_values_on_the_bounds_are_accepted() -> None:
    prepare_job(job({"kind": "grid", "parameters": {AVAIL: [0.0, 1.0]}}))
    prepare_job(job({"kind": "one_at_a_time", "parameters": {AVAIL: {"low": 0, "high": 1}}}))
    prepare_job(job({"kind": "list", "scenarios": [{"name": "x", "overrides": {AVAIL: 0.0}}]}))


# --- price processes ---------------------------------------------------------------------------

PRICE = "markets.methanol_sales.price"


def test_an_ou_price_is_accepted_because_market_prices_may_be_negative() -> None:
    prepare_job(mc({}, processes={PRICE: {"process": "ou", "kappa": 1.0, "sigma": 0.3}}))


def test_on_a_non_negative_price_an_ou_is_refused_and_log_ou_and_gbm_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A model whose prices were constrained >= 0 (none of the library's is).
    monkeypatch.setattr(scenarios, "domain_of", lambda path: Domain(low=0.0))
    ou = {"process": "ou", "kappa": 1.0, "sigma": 0.3}
    (problem,) = problems(mc({}, processes={PRICE: ou}))
    assert f"scenarios.processes.{PRICE}: ou paths span [-inf, inf]" in problem
    assert "log: true" in problem
    prepare_job(mc({}, processes={PRICE: {**ou, "log": True}}))
    prepare_job(mc({}, processes={PRICE: {"process": "gbm", "sigma": 0.3}}))
    (problem,) = problems(mc({}, processes={PRICE: {"process": "gbm", "sigma": 0.3, "s0": -1}}))
    assert "gbm paths span [-inf, 0]" in problem


# --- sample cap --------------------------------------------------------------------------------


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_the_issues_1e12_sample_lhs_job_is_refused_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDT_MAX_SAMPLES", raising=False)
    assert sample_cap() == DEFAULT_MAX_SAMPLES
    data = mc({AVAIL: {**TRIANGULAR, "truncate": [0, 1]}}, method="lhs")
    data["scenarios"]["samples"] = 10**12
    with pytest.raises(SpecError) as info:
        load_job(_write(tmp_path, data))
    assert info.value.problems == [
        "scenarios.samples: 1,000,000,000,000 scenarios exceed the cap of 1,000,000,000"
        " (setting EDT_MAX_SAMPLES; raise it to run more)"
    ]
    # A worker rebuilding an accepted job applies no cap.
    assert prepare_job(data).total == 10**12


def test_the_cap_is_the_setting_and_counts_every_kind_of_scenario_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDT_MAX_SAMPLES", "1e3")
    uniform = {"dist": "uniform", "low": 0.5, "high": 1.0}
    data = mc({AVAIL: uniform})
    data["scenarios"]["samples"] = 1000
    assert load_job(_write(tmp_path, data)).total == 1000
    data["scenarios"]["samples"] = 1001
    with pytest.raises(SpecError, match=r"scenarios\.samples: 1,001 .*EDT_MAX_SAMPLES"):
        load_job(_write(tmp_path, data))
    del data["scenarios"]["samples"]
    data["scenarios"]["until"] = {"statistic": "mean", "half_width": 1, "max_samples": 4096}
    with pytest.raises(SpecError, match=r"scenarios\.until\.max_samples: 4,096"):
        load_job(_write(tmp_path, data))
    grid = job({"kind": "grid", "parameters": {AVAIL: [0.5] * 40, "finance.tax_rate": [0.2] * 40}})
    with pytest.raises(SpecError, match=r"scenarios\.parameters: 1,600 scenarios exceed"):
        load_job(_write(tmp_path, grid))


@pytest.mark.parametrize("raw", ["lots", "0", "1.5", "-3"])
def test_a_malformed_cap_setting_is_named(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDT_MAX_SAMPLES", raw)
    with pytest.raises(ValueError, match="EDT_MAX_SAMPLES"):
        sample_cap()


# --- file syntax and model files ---------------------------------------------------------------


def test_a_yaml_syntax_error_shows_pyyamls_message_and_line_on_one_line(tmp_path: Path) -> None:
    text = "schema_version: 1\nname: t\nscenarios:\n  kind: grid\n  parameters: {a: [1, 2}\n"
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(yaml.MarkedYAMLError) as ref:
        yaml.safe_load(text)
    mark = ref.value.problem_mark
    assert mark is not None and ref.value.problem is not None
    with pytest.raises(ValueError) as info:
        load_job(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: not valid YAML: ")
    assert f"line {mark.line + 1}, column {mark.column + 1}: {ref.value.problem}" in message


def test_validate_file_tells_a_model_file_from_a_job_file(tmp_path: Path) -> None:
    summary = validate_file(LIBRARY / "steel_minimill.yaml")
    assert "valid model steel_minimill" in summary and "parameter paths" in summary
    doc = yaml.safe_load((LIBRARY / "methanol_ammonia.yaml").read_text(encoding="utf-8"))
    doc["units"][0]["capacity"] = -5
    doc["units"][1]["availability"] = 1.5
    bad = tmp_path / "model.yaml"
    bad.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        validate_file(bad)
    text = "\n".join(info.value.problems)
    assert "units.reformer.capacity" in text and "units.methanol_synthesis.availability" in text
    job_path = _write(tmp_path, mc({AVAIL: {**TRIANGULAR, "truncate": [0, 1]}}))
    assert validate_file(job_path).endswith(
        "valid (64 scenarios, mode simulate, model methanol_ammonia)"
    )
    neither = tmp_path / "other.yaml"
    neither.write_text("name: x\n", encoding="utf-8")
    with pytest.raises(SpecError, match="neither a job file"):
        validate_file(neither)
