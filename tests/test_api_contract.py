"""The /v1 contract: the committed OpenAPI document is the served one, changes to it are
checked for breakage, and schemathesis finds no 5xx and no answer outside the schema."""

from __future__ import annotations

import copy
import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from api.app import create_app
from api.contract import COMMITTED, breaking_changes, served_document
from api.settings import Settings
from tests.api_support import BIN, auth, small_mc, thread_server, write_tokens


def test_the_committed_openapi_document_is_the_served_one() -> None:
    committed = json.loads(COMMITTED.read_text())
    assert committed == served_document(), "api/openapi.json is stale: run python -m api.contract"


def test_the_served_document_does_not_break_the_committed_v1() -> None:
    assert breaking_changes(json.loads(COMMITTED.read_text()), served_document()) == []


def test_every_operation_has_a_stable_explicit_id() -> None:
    doc = served_document()
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)) == 16
    assert all("_v1_" not in i and "__" not in i for i in ids)  # not FastAPI's generated ones


def _op(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    op: dict[str, Any] = doc["paths"][path][method]
    return op


def test_the_breakage_check_catches_each_kind_of_breaking_change() -> None:
    old = json.loads(COMMITTED.read_text())

    def changed(edit: Any) -> list[str]:
        new = copy.deepcopy(old)
        edit(new)
        return breaking_changes(old, new)

    assert changed(lambda d: d["paths"].pop("/v1/usage")) == ["/v1/usage: path removed"]
    assert changed(lambda d: d["paths"]["/v1/jobs"].pop("get")) == [
        "GET /v1/jobs: operation removed"
    ]
    assert changed(lambda d: _op(d, "get", "/v1/jobs").update(operationId="jobs_list")) == [
        "GET /v1/jobs: operation id list_jobs -> jobs_list"
    ]
    gone = changed(lambda d: d["components"]["schemas"]["JobPublic"]["properties"].pop("progress"))
    assert "GET /v1/jobs/{job_id} 200: response field 'progress' removed" in gone
    assert "GET /v1/jobs 200.data[]: response field 'progress' removed" in gone
    assert changed(
        lambda d: d["components"]["schemas"]["JobCreate"]["required"].append("description")
    ) == [
        "POST /v1/jobs: request field 'description' is newly required",
        "POST /v1/jobs/validate: request field 'description' is newly required",
    ]
    assert changed(
        lambda d: next(
            p for p in _op(d, "get", "/v1/jobs")["parameters"] if p["name"] == "limit"
        ).update(required=True)
    ) == ["GET /v1/jobs: parameter 'limit' is newly required"]
    # Additions are not breaking.
    assert changed(lambda d: d["paths"].update({"/v1/new": {"get": {"operationId": "x"}}})) == []
    assert (
        changed(
            lambda d: d["components"]["schemas"]["JobPublic"]["properties"].update(
                extra={"type": "string"}
            )
        )
        == []
    )


def test_the_server_refuses_to_bind_a_public_address_without_tokens(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(BIN / "edt"), "serve", "--host", "0.0.0.0", "--port", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": str(BIN), "HOME": str(tmp_path)},
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and "without authentication" in lines[0] and "EDT_TOKENS_FILE" in lines[0]
    )
    assert not (tmp_path / "edt-data").exists()


# ---- schemathesis -----------------------------------------------------------------------

EXAMPLES = {GenerationMode.POSITIVE: 80, GenerationMode.NEGATIVE: 30}


@pytest.mark.slow
def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_schema(tmp_path: Path) -> None:
    s = Settings(
        registry=f"sqlite:///{tmp_path}/registry.db",
        storage=str(tmp_path / "results"),
        tokens_file=str(write_tokens(tmp_path / "tokens.yaml")),
        scheduler=False,
    )
    with thread_server(create_app(s)) as url:
        job = httpx.post(f"{url}/v1/jobs", json=small_mc(), headers=auth("acme-admin")).json()
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        calls: Counter[str] = Counter()
        statuses: Counter[int] = Counter()
        operations = [r.ok() for r in schema.get_all_operations()]
        assert len(operations) == 16
        for op in operations:
            for mode, n in EXAMPLES.items():
                fixed = {"job_id": job["id"]} if mode is GenerationMode.POSITIVE else {}
                _fuzz(op, mode, n, url, fixed, calls, statuses)
    total = sum(calls.values())
    print(f"schemathesis: {total} requests over {len(calls)} operations; statuses {dict(statuses)}")
    assert total >= 1000 and len(calls) == 16, calls


def _fuzz(
    op: Any,
    mode: GenerationMode,
    n: int,
    url: str,
    fixed: dict[str, str],
    calls: Counter[str],
    statuses: Counter[int],
) -> None:
    """`n` generated requests to one operation; positive ones mostly aim at a real job."""

    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        if case.path_parameters and "job_id" in case.path_parameters and fixed:
            case.path_parameters.update(fixed)
        response = case.call(base_url=url, headers=auth("acme-admin"), timeout=30)
        calls[op.label] += 1
        statuses[response.status_code] += 1
        assert response.status_code < 500, (case.method, case.formatted_path, response.text)
        case.validate_response(
            response,
            checks=[
                schemathesis.checks.not_a_server_error,
                schemathesis.checks.status_code_conformance,
                schemathesis.checks.content_type_conformance,
                schemathesis.checks.response_schema_conformance,
            ],
        )

    try:
        run()
    except Unsatisfiable:
        # Nothing to make invalid (no parameters, e.g. /healthz): no negative cases exist.
        assert mode is GenerationMode.NEGATIVE, op.label


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("tokens: {}", "tokens"),
        ("tokens: {'sha256:abc': {tenant: a, role: viewer}}", "bad sha256 digest"),
        ("tokens: {t: {tenant: a, role: owner}}", "role"),
        ("tokens: [", "EDT_TOKENS_FILE"),
    ],
)
def test_a_bad_tokens_file_is_refused_in_one_line(
    tmp_path: Path, content: str, problem: str
) -> None:
    (tmp_path / "tokens.yaml").write_text(content)
    out = subprocess.run(
        [str(BIN / "edt"), "serve", "--tokens-file", str(tmp_path / "tokens.yaml"), "--port", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": str(BIN), "HOME": str(tmp_path)},
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and problem in lines[0] and "tokens.yaml" in lines[0], lines
