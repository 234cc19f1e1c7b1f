"""Job files and chunk evaluation, without Ray: the same function the actors run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import yaml

from edt_compute import finance
from edt_compute.compiled import compile_model
from edt_compute.library import load_model
from edt_compute.simulation import simulate
from edt_compute.validation import SpecError
from jobs.evaluate import ChunkEvaluator, evaluate_chunk
from jobs.spec import JobSpec, PreparedJob, load_job, prepare_job
from tests.support import assert_identical

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "jobs"


def _job(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema_version": 1,
        "name": "t",
        "model": "methanol_ammonia",
        "seed": 7,
        "scenarios": {
            "kind": "monte_carlo",
            "samples": 50,
            "parameters": {
                "markets.methanol_sales.price": {"dist": "uniform", "low": 0.2, "high": 0.45}
            },
        },
    }
    data.update(over)
    return data


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_jobs_validate(path: Path) -> None:
    assert load_job(path).total > 0


def test_bad_job_lists_every_problem_with_its_path() -> None:
    data = _job(mode="optimise", seed=-1)
    data["scenarios"]["samples"] = 0
    with pytest.raises(SpecError) as info:
        prepare_job(data)
    text = "\n".join(info.value.problems)
    assert "mode:" in text and "seed:" in text and "scenarios.samples" in text


def test_unknown_parameter_path_is_refused_before_running() -> None:
    data = _job()
    data["scenarios"]["parameters"]["markets.nope.price"] = {"dist": "uniform", "low": 0, "high": 1}
    with pytest.raises(SpecError, match=r"scenarios\.parameters\.markets\.nope\.price"):
        prepare_job(data)


def test_unknown_project_and_model_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="projects: unknown project 'x'"):
        prepare_job(_job(projects=["x"]))
    with pytest.raises(SpecError, match="model:"):
        prepare_job(_job(model="no_such_model"))


def test_model_file_is_resolved_relative_to_the_job_file(tmp_path: Path) -> None:
    from importlib import resources

    text = resources.files("edt_compute.library").joinpath("steel_minimill.yaml").read_text()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mill.yaml").write_text(text)
    (tmp_path / "job.yaml").write_text(
        yaml.safe_dump(
            _job(
                model="models/mill.yaml",
                scenarios={"kind": "grid", "parameters": {"markets.rebar_sales.price": [0.6, 0.7]}},
            )
        )
    )
    job = load_job(tmp_path / "job.yaml")
    assert job.model.name == "steel_minimill" and job.total == 2


def test_chunk_table_has_the_contract_columns() -> None:
    table = evaluate_chunk(prepare_job(_job()), np.arange(10))
    for col in (
        "scenario_id",
        "status",
        "error",
        "npv",
        "irr",
        "mirr",
        "pi",
        "payback_years",
        "discounted_payback_years",
        "markets.methanol_sales.price",
    ):
        assert col in table.scenarios.column_names
    assert table.scenarios.schema.field("scenario_id").type == pa.int64()


def test_npv_is_the_incremental_npv_of_the_project() -> None:
    job = prepare_job(_job())
    ids = np.arange(5)
    table = evaluate_chunk(job, ids).scenarios
    ev = ChunkEvaluator(job)
    inputs = ev.inputs(ids)
    cm = compile_model(load_model("methanol_ammonia"), 5, scalars=inputs.scalars)
    with_p = simulate(cm, np.zeros((5, 1), dtype=np.int64))
    without = simulate(cm)
    rate = finance.period_rate(0.12, 4)
    import numpy_financial as npf

    expected = [npf.npv(rate, with_p.fcf[i] - without.fcf[i]) for i in range(5)]
    assert np.allclose(table.column("npv").to_numpy(), expected, rtol=1e-9)


def test_chunks_give_identical_rows_whatever_the_split() -> None:
    data = _job()
    data["scenarios"]["parameters"]["finance.discount_rate"] = {
        "dist": "uniform",
        "low": 0.08,
        "high": 0.16,
    }
    job = prepare_job(data)
    whole = evaluate_chunk(job, np.arange(50)).scenarios
    parts = pa.concat_tables(
        [evaluate_chunk(job, np.arange(a, min(a + 7, 50))).scenarios for a in range(0, 50, 7)]
    )
    assert_identical(whole, parts)


def test_a_bad_scenario_is_recorded_and_the_others_go_on() -> None:
    data = _job(
        scenarios={
            "kind": "list",
            "scenarios": [
                {"name": "base", "overrides": {}},
                {"name": "broken", "overrides": {"units.reformer.availability": 1.7}},
                {"name": "tank", "overrides": {"storages.methanol_tanks.initial": 99.0}},
                {"name": "cheap_gas", "overrides": {"markets.gas_supply.price": 0.05}},
            ],
        }
    )
    with pytest.raises(SpecError, match=r"overrides\.units\.reformer\.availability: 1\.7"):
        prepare_job(data)
    # Validation refuses the 1.7 up front; a job built without it (as one stored before
    # domains were checked) still fails only that scenario.
    unchecked = PreparedJob(spec=JobSpec.model_validate(data), model=load_model("methanol_ammonia"))
    table = evaluate_chunk(unchecked, np.arange(4)).scenarios.to_pylist()
    assert [r["status"] for r in table] == ["ok", "error", "error", "ok"]
    assert "units.reformer.availability" in table[1]["error"]
    assert "initial" in table[2]["error"]
    assert table[3]["npv"] is not None and table[0]["error"] is None


def test_timeseries_are_long_format() -> None:
    job = prepare_job(_job(outputs={"timeseries": True}))
    ts = evaluate_chunk(job, np.arange(3)).timeseries
    assert ts is not None and ts.num_rows == 3 * job.model.finance.horizon
    assert ts.column_names[:2] == ["scenario_id", "period"]


def test_optimize_mode_reports_solver_fields_and_records_infeasible_scenarios() -> None:
    data = _job(
        mode="optimize",
        scenarios={
            "kind": "list",
            "scenarios": [
                {"name": "base", "overrides": {}},
                {
                    "name": "dear_capex",
                    "overrides": {"projects.methanol_debottleneck.capex": 500.0},
                },
                # A contracted minimum with no penalty is hard: 500 kt a quarter cannot be made.
                {
                    "name": "impossible",
                    "overrides": {
                        "markets.methanol_sales.min_volume": 125.0,
                        "markets.methanol_sales.shortfall_penalty": 0.0,
                        "units.methanol_synthesis.capacity": 50.0,
                    },
                },
            ],
        },
    )
    rows = evaluate_chunk(prepare_job(data), np.arange(3)).scenarios.to_pylist()
    assert [r["status"] for r in rows] == ["ok", "ok", "infeasible"]
    base, dear, _ = rows
    # The MILP objective is the kernel's NPV of the enterprise's free cash flow with the plan.
    assert base["objective"] == pytest.approx(base["enterprise_npv"], rel=1e-9)
    assert base["build_methanol_debottleneck"] >= 0 and base["npv"] > 0
    assert dear["build_methanol_debottleneck"] == -1 and dear["npv"] == 0.0
    assert rows[2]["error"]


def test_build_periods_outside_the_window_or_in_optimize_mode_are_refused() -> None:
    with pytest.raises(SpecError, match=r"build_periods\.methanol_debottleneck: period 30 outside"):
        prepare_job(_job(build_periods={"methanol_debottleneck": 30}))
    with pytest.raises(SpecError, match="optimize mode chooses"):
        prepare_job(_job(mode="optimize", build_periods={"methanol_debottleneck": 2}))


def test_a_multiplier_of_a_zero_base_value_is_refused() -> None:
    data = _job(
        scenarios={
            "kind": "grid",
            "mode": "multiplier",
            "parameters": {"markets.methanol_sales.escalation": [0.5, 2.0]},
        }
    )
    with pytest.raises(SpecError, match="base value is 0"):
        prepare_job(data)


def test_a_sampled_stock_above_its_tank_fails_only_its_scenario() -> None:
    data = _job(
        scenarios={
            "kind": "grid",
            "parameters": {"storages.methanol_tanks.capacity": [40.0, 5.0, 30.0]},
        }
    )
    rows = evaluate_chunk(prepare_job(data), np.arange(3)).scenarios.to_pylist()
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    assert (
        rows[1]["error"]
        == "storages.methanol_tanks.initial: value 10.0 exceeds storages.methanol_tanks.capacity = 5.0"
    )
