"""The results store: layout, atomic commits and round trips on local disk and S3."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.storage import ResultStore, job_prefix, part_name

JOB = "job-20240101000000-abcdef"


def _scenarios(ids: list[int]) -> pa.Table:
    return pa.table(
        {
            "scenario_id": pa.array(ids, pa.int64()),
            "status": ["ok"] * len(ids),
            "error": pa.array([None] * len(ids), pa.string()),
            "npv": [float(i) * 1.5 for i in ids],
        }
    )


def _timeseries(ids: list[int], periods: int = 3) -> pa.Table:
    rows = [(s, p) for s in ids for p in reversed(range(periods))]
    return pa.table(
        {
            "scenario_id": pa.array([s for s, _ in rows], pa.int64()),
            "period": pa.array([p for _, p in rows], pa.int64()),
            "cash": [float(s * 10 + p) for s, p in rows],
        }
    )


def _round_trip(store: ResultStore) -> None:
    spec = {"name": "demo", "scenarios": 6, "seed": 7}
    store.write_job_spec(JOB, spec)
    # Chunks finish out of order; the reader sorts by scenario_id.
    store.write_part(JOB, _scenarios([5, 4]), 2, "scenarios")
    store.write_part(JOB, _scenarios([0, 1]), 0, "scenarios")
    store.write_part(JOB, _scenarios([3, 2]), 1, "scenarios")
    store.write_part(JOB, _timeseries([3, 2]), 1, "timeseries")
    store.write_part(JOB, _timeseries([1, 0]), 0, "timeseries")
    store.write_json(JOB, "summary.json", {"npv": {"mean": 3.75}})
    store.write_json(JOB, "manifest.json", {"parts": 3})

    assert store.read_json(JOB, "job.json") == spec
    assert store.read_json(JOB, "summary.json") == {"npv": {"mean": 3.75}}
    assert store.exists(JOB, "manifest.json") and not store.exists(JOB, "other.json")
    assert store.list_parts(JOB, "scenarios") == [0, 1, 2]
    assert store.list_parts(JOB, "timeseries") == [0, 1]

    scenarios = store.read_scenarios(JOB)
    assert scenarios.column("scenario_id").to_pylist() == [0, 1, 2, 3, 4, 5]
    assert scenarios.column("npv").to_pylist() == [0.0, 1.5, 3.0, 4.5, 6.0, 7.5]
    assert scenarios.schema.field("scenario_id").type == pa.int64()

    ts = store.read_timeseries(JOB)
    assert list(zip(ts["scenario_id"].to_pylist(), ts["period"].to_pylist(), strict=True)) == [
        (s, p) for s in range(4) for p in range(3)
    ]


def test_layout_follows_the_contract(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path))
    assert job_prefix(JOB) == f"jobs/{JOB}"
    assert part_name(7) == "part-00007.parquet"
    url = store.write_part(JOB, _scenarios([0]), 7, "scenarios")
    assert url == f"file://{tmp_path}/jobs/{JOB}/scenarios/part-00007.parquet"
    store.write_job_spec(JOB, {"a": 1})
    assert (tmp_path / "jobs" / JOB / "job.json").is_file()


def test_local_round_trip(tmp_path: Path) -> None:
    _round_trip(ResultStore(f"file://{tmp_path}"))


def test_a_relative_path_is_pinned_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = ResultStore("results")
    assert store.url == str(tmp_path / "results")
    monkeypatch.chdir("/")
    store.write_json(JOB, "summary.json", {})
    assert (tmp_path / "results" / "jobs" / JOB / "summary.json").is_file()


def test_a_job_without_parts_reads_as_an_empty_table(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path))
    assert store.list_parts(JOB) == []
    assert store.read_scenarios(JOB).num_rows == 0
    with pytest.raises(FileNotFoundError):
        store.read_json(JOB, "summary.json")


def test_unsafe_names_are_refused(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path))
    with pytest.raises(ValueError):
        store.write_json("../escape", "job.json", {})
    with pytest.raises(ValueError):
        store.write_json(JOB, "../job.json", {})
    with pytest.raises(ValueError):
        store.write_part(JOB, _scenarios([0]), 0, "other")  # type: ignore[arg-type]


def test_json_must_be_strict(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ResultStore(str(tmp_path)).write_json(JOB, "summary.json", {"irr": float("nan")})


def test_rerunning_a_chunk_overwrites_its_part(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path))
    store.write_part(JOB, _scenarios([0, 1]), 0)
    store.write_part(JOB, _scenarios([2, 3]), 1)
    rewritten = _scenarios([0, 1]).set_column(3, "npv", pa.array([9.0, 9.0]))
    store.write_part(JOB, rewritten, 0)
    assert store.list_parts(JOB) == [0, 1]
    assert sorted(os.listdir(tmp_path / "jobs" / JOB / "scenarios")) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    assert store.read_scenarios(JOB)["npv"].to_pylist() == [9.0, 9.0, 3.0, 4.5]


def test_a_part_is_one_row_group(tmp_path: Path) -> None:
    # More rows than pyarrow's default row-group limit (1Mi): the store must override it.
    table = pa.table({"scenario_id": pa.array(range(1_100_000), pa.int64())})
    store = ResultStore(str(tmp_path))
    store.write_part(JOB, table, 0)
    assert pq.ParquetFile(store.part_path(JOB, 0)).metadata.num_row_groups == 1


def _hook_replace(
    monkeypatch: pytest.MonkeyPatch, on_commit: Callable[[str, str], None]
) -> list[str]:
    """Run ``on_commit(tmp, final)`` just before the store renames a temporary file."""
    real_replace = os.replace
    seen: list[str] = []

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        seen.append(str(src))
        on_commit(str(src), str(dst))
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return seen


def test_readers_never_see_a_part_before_its_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ResultStore(str(tmp_path))
    store.write_part(JOB, _scenarios([0, 1]), 0)
    scenario_dir = tmp_path / "jobs" / JOB / "scenarios"

    def check_while_uncommitted(tmp: str, final: str) -> None:
        # Make the temporary file a torn half write: readers must still not trip on it.
        with open(tmp, "r+b") as f:
            f.truncate(os.path.getsize(tmp) // 2)
        assert Path(tmp).parent == scenario_dir and Path(tmp).name.startswith(".")
        assert not os.path.exists(final)
        assert store.list_parts(JOB) == [0]
        assert pd.read_parquet(scenario_dir)["scenario_id"].tolist() == [0, 1]
        assert store.read_scenarios(JOB).num_rows == 2
        raise OSError("simulated crash before the rename")

    seen = _hook_replace(monkeypatch, check_while_uncommitted)
    with pytest.raises(OSError, match="simulated crash"):
        store.write_part(JOB, _scenarios([2, 3]), 1)
    assert len(seen) == 1
    # The failed attempt leaves nothing behind; the committed part is intact.
    assert os.listdir(scenario_dir) == ["part-00000.parquet"]
    assert store.list_parts(JOB) == [0]


def test_a_committed_part_replaces_its_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ResultStore(str(tmp_path))
    seen = _hook_replace(monkeypatch, lambda tmp, final: None)
    store.write_part(JOB, _scenarios([0, 1]), 0)
    store.write_json(JOB, "manifest.json", {"ok": True})
    assert len(seen) == 2 and not any(os.path.exists(p) for p in seen)
    assert pd.read_parquet(tmp_path / "jobs" / JOB / "scenarios")["scenario_id"].tolist() == [0, 1]


def test_parts_with_an_all_null_column_still_combine(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path))
    store.write_part(JOB, pa.table({"scenario_id": [1], "irr": pa.array([None], pa.null())}), 1)
    store.write_part(JOB, pa.table({"scenario_id": [0], "irr": [0.12]}), 0)
    table = store.read_scenarios(JOB)
    assert table.schema.field("irr").type == pa.float64()
    assert table["irr"].to_pylist() == [0.12, None]


def test_delete_part_removes_it_and_tolerates_absence(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path))
    store.write_part(JOB, _scenarios([0]), 0)
    store.delete_part(JOB, 0)
    store.delete_part(JOB, 0)
    assert store.list_parts(JOB) == []


def test_local_store_survives_pickling(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path))
    store.write_part(JOB, _scenarios([0, 1]), 0)  # the filesystem now exists in this copy
    clone = pickle.loads(pickle.dumps(store))
    assert clone.url == store.url
    assert clone.read_scenarios(JOB).equals(store.read_scenarios(JOB))


# ---- S3 (moto on loopback) ----------------------------------------------------------


@pytest.mark.slow
def test_s3_round_trip(s3_bucket: str) -> None:
    _round_trip(ResultStore(f"s3://{s3_bucket}/results"))


@pytest.mark.slow
def test_s3_part_is_uploaded_whole_in_one_call(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ResultStore(f"s3://{s3_bucket}/results")
    fs = store.fs
    uploads: list[tuple[str, int]] = []
    real_pipe_file = fs.pipe_file

    def pipe_file(path: str, data: bytes, **kwargs: Any) -> Any:
        uploads.append((path, len(data)))
        return real_pipe_file(path, data, **kwargs)

    def no_streaming(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("parts must not be streamed to S3 piecewise")

    monkeypatch.setattr(fs, "pipe_file", pipe_file)
    monkeypatch.setattr(fs, "open", no_streaming)
    url = store.write_part(JOB, _scenarios([0, 1, 2]), 4)
    assert url == f"s3://{s3_bucket}/results/jobs/{JOB}/scenarios/part-00004.parquet"
    assert uploads == [(url.removeprefix("s3://"), fs.size(url))]


@pytest.mark.slow
def test_s3_listing_sees_parts_written_by_another_process(s3_bucket: str) -> None:
    reader = ResultStore(f"s3://{s3_bucket}/results")
    writer = ResultStore(f"s3://{s3_bucket}/results")
    writer.write_part(JOB, _scenarios([0]), 0)
    assert reader.list_parts(JOB) == [0]
    writer.write_part(JOB, _scenarios([1]), 1)
    assert reader.list_parts(JOB) == [0, 1]
    assert reader.read_scenarios(JOB).num_rows == 2


@pytest.mark.slow
def test_s3_store_survives_pickling(s3_bucket: str) -> None:
    store = ResultStore(f"s3://{s3_bucket}/results")
    store.write_json(JOB, "summary.json", {"n": 1})  # connect before pickling
    clone = pickle.loads(pickle.dumps(store))
    assert clone.read_json(JOB, "summary.json") == {"n": 1}
    clone.write_part(JOB, _scenarios([0]), 0)
    assert store.list_parts(JOB) == [0]


@pytest.mark.slow
def test_s3_endpoint_can_be_given_explicitly(
    s3_bucket: str, s3_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    store = ResultStore(f"s3://{s3_bucket}/x", storage_options={"endpoint_url": s3_server})
    store.write_json(JOB, "job.json", {"a": 1})
    assert store.read_json(JOB, "job.json") == {"a": 1}
