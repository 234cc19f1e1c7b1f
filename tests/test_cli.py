"""The `edt` commands that only read the registry and storage (no Ray): what they print, and
the one-line refusals (exit 2) of bad input and settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from api.cli import app
from jobs.registry import Registry
from jobs.status import JobStatus
from jobs.storage import ResultStore

runner = CliRunner()


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return Registry(f"sqlite:///{tmp_path / 'r.db'}")


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_jobs_never_cuts_ids_and_has_json(reg: Registry, tmp_path: Path) -> None:
    long_id = "job-" + "x" * 60
    reg.create_job(long_id, "a name that is rather long for a narrow terminal", {}, "h", 10, 1)
    code, out, _ = _invoke("jobs", "--registry", reg.url)
    assert code == 0 and long_id in out
    code, out, _ = _invoke("jobs", "--registry", reg.url, "--json")
    assert code == 0 and [j["id"] for j in json.loads(out)] == [long_id]


def test_an_adaptive_job_shows_where_it_stopped(reg: Registry) -> None:
    rec = reg.create_job(None, "adaptive", {}, "h", 65536, 64)
    reg.set_status(rec.id, JobStatus.RUNNING)
    reg.finish_adaptive(rec.id, 2336, 3)
    reg.set_status(rec.id, JobStatus.SUCCEEDED)
    code, out, _ = _invoke("jobs", "--registry", reg.url)
    assert code == 0 and "2336/2336" in out and "65536" not in out


def test_a_running_job_whose_supervisor_is_gone_is_shown_interrupted(reg: Registry) -> None:
    rec = reg.create_job(None, "j", {}, "h", 10, 1)
    reg.take_over(rec.id, "another-host:123:abc", None)
    reg.set_status(rec.id, JobStatus.RUNNING)
    code, out, _ = _invoke("status", rec.id, "--registry", reg.url)
    doc = json.loads(out)
    assert code == 0 and doc["status"] == "running"  # its heartbeat is fresh
    stale = datetime.now(UTC) + timedelta(minutes=5)
    from cluster.liveness import shown_status

    status, note = shown_status(reg.get(rec.id), now=stale)
    assert status == "interrupted" and note is not None and f"edt resume {rec.id}" in note


def test_cancel_of_an_interrupted_job_ends_it_at_once(reg: Registry) -> None:
    rec = reg.create_job(None, "j", {}, "h", 10, 1)
    reg.set_status(rec.id, JobStatus.INTERRUPTED, error="storage unreachable")
    code, out, _ = _invoke("cancel", rec.id, "--registry", reg.url)
    assert code == 0 and "cancelled" in out
    assert reg.get(rec.id).status is JobStatus.CANCELLED


def test_results_are_read_from_the_jobs_own_storage(reg: Registry, tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path / "somewhere"))
    rec = reg.create_job(None, "j", {}, "h", 2, 1, storage=store.url)
    store.write_part(rec.id, pa.table({"scenario_id": [0, 1], "npv": [1.5, -2.0]}), 0)
    out_file = tmp_path / "out.csv"
    code, _, err = _invoke("results", rec.id, "--registry", reg.url, "-o", str(out_file))
    assert code == 0, err
    assert out_file.read_text().splitlines() == ["scenario_id,npv", "0,1.5", "1,-2.0"]


@pytest.mark.parametrize(
    ("output", "words"), [("out.xlsx", "unknown extension"), ("no/such/out.csv", "does not exist")]
)
def test_results_refuse_bad_output_files(
    reg: Registry, tmp_path: Path, output: str, words: str
) -> None:
    rec = reg.create_job(None, "j", {}, "h", 2, 1, storage=str(tmp_path))
    code, _, err = _invoke("results", rec.id, "--registry", reg.url, "-o", str(tmp_path / output))
    assert code == 2 and words in err


@pytest.mark.parametrize(
    "registry",
    [
        "notaurl",
        "postgres://u@localhost/db",
        "mysql://u@h/db",
        "sqlite://",
        "sqlite:////no/such/dir/reg.db",
    ],
)
def test_bad_registry_settings_exit_2_with_one_line_and_create_nothing(
    tmp_path: Path, registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    job = Path(__file__).resolve().parents[1] / "examples" / "jobs" / "methanol_mc.yaml"
    code, _, err = _invoke("run", str(job), "--registry", registry)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: registry: ")
    assert list(tmp_path.iterdir()) == [] and not Path("/no/such").exists()


def test_environment_settings_are_used(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = reg.create_job(None, "from-env", {}, "h", 1, 1)
    monkeypatch.setenv("EDT_REGISTRY", reg.url)
    code, out, _ = _invoke("status", rec.id)
    assert code == 0 and json.loads(out)["name"] == "from-env"


def test_an_unknown_job_is_one_line(reg: Registry) -> None:
    code, _, err = _invoke("status", "job-nope", "--registry", reg.url)
    assert code == 2 and err.count("\n") == 1 and "no job job-nope" in err


def test_validate_reports_a_yaml_syntax_error_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nscenarios: {kind: list, scenarios: [}\n")
    code, _, err = _invoke("validate", str(bad))
    assert code == 2 and "line 2" in err and "Traceback" not in err


def test_validate_takes_a_model_file_and_lists_its_problems(tmp_path: Path) -> None:
    import yaml

    source = Path(__file__).resolve().parents[1] / "edt_compute" / "library" / "steel_minimill.yaml"
    code, out, _ = _invoke("validate", str(source))
    assert code == 0 and "valid model steel_minimill" in out
    model = yaml.safe_load(source.read_text())
    model["units"][0]["availability"] = 1.7
    bad = tmp_path / "model.yaml"
    bad.write_text(yaml.safe_dump(model))
    code, _, err = _invoke("validate", str(bad))
    assert code == 2 and "units.eaf.availability" in err


def test_reading_commands_never_create_a_registry(tmp_path: Path) -> None:
    typo = tmp_path / "typo.db"
    for args in (["status", "job-x"], ["jobs"], ["cancel", "job-x"], ["wait", "job-x"]):
        code, _, err = _invoke(*args, "--registry", f"sqlite:///{typo}")
        assert code == 2 and "no registry at" in err, (args, err)
    assert list(tmp_path.iterdir()) == []


def test_a_malformed_fault_timeout_is_a_bad_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDT_FAULT_TIMEOUT", "abc")
    job = Path(__file__).resolve().parents[1] / "examples" / "jobs" / "methanol_mc.yaml"
    code, _, err = _invoke(
        "run",
        str(job),
        "--registry",
        f"sqlite:///{tmp_path / 'r.db'}",
        "--storage",
        str(tmp_path / "res"),
    )
    assert code == 2 and "EDT_FAULT_TIMEOUT" in err
    assert list(tmp_path.iterdir()) == []


def test_models_lists_every_bundled_model() -> None:
    from edt_compute.library import list_models

    code, out, _ = _invoke("models")
    assert code == 0
    names = [line.split(":", 1)[0] for line in out.splitlines() if ":" in line]
    assert set(list_models()) <= set(names) and list_models()


def test_models_name_lists_its_paths_with_the_values_of_the_model_file() -> None:
    import yaml

    import edt_compute.library

    folder = Path(edt_compute.library.__file__).parent
    raw = yaml.safe_load((folder / "methanol_ammonia.yaml").read_text())
    reformer = next(u for u in raw["units"] if u["name"] == "reformer")
    gas = reformer["inputs"]["natural_gas"]
    code, out, _ = _invoke("models", "methanol_ammonia")
    assert code == 0
    row = next(line for line in out.splitlines() if "units.reformer.inputs.natural_gas" in line)
    assert f"{gas:g}" in row.split("natural_gas", 1)[1]


def test_models_of_an_unknown_name_is_one_line() -> None:
    code, _, err = _invoke("models", "no_such_plant")
    assert code == 2 and "no_such_plant" in err and len(err.strip().splitlines()) <= 2


def test_validate_of_a_good_job_says_what_it_would_run() -> None:
    job = Path(__file__).resolve().parents[1] / "examples" / "jobs" / "methanol_mc.yaml"
    spec = yaml_load(job)
    code, out, _ = _invoke("validate", str(job))
    assert code == 0
    assert f"valid ({spec['scenarios']['samples']:,} scenarios" in out and "methanol_ammonia" in out


def test_cancel_of_a_queued_job_is_requested_and_recorded(reg: Registry) -> None:
    rec = reg.create_job(None, "j", {}, "h", 10, 1)
    code, out, _ = _invoke("cancel", rec.id, "--registry", reg.url)
    after = reg.get(rec.id)
    assert code == 0 and after.status.value in out
    assert after.cancel_requested or after.status is JobStatus.CANCELLED


def yaml_load(path: Path) -> dict[str, object]:
    import yaml

    data: dict[str, object] = yaml.safe_load(path.read_text())
    return data
