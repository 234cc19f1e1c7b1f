"""Repository contracts: schemas exported, layers respected, lint and types clean, README runs in CI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; it comes with the project's [test] extra")
    return path


def test_committed_json_schemas_match_the_code() -> None:
    sys.path.insert(0, str(ROOT))
    from scripts.export_schemas import schemas

    for name, schema in schemas().items():
        committed = json.loads((ROOT / "schemas" / name).read_text())
        assert committed == json.loads(json.dumps(schema)), (
            f"schemas/{name} is stale: run python scripts/export_schemas.py"
        )


def test_import_layers_hold() -> None:
    out = subprocess.run([_tool("lint-imports")], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_is_clean() -> None:
    out = subprocess.run([_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_mypy_is_clean() -> None:
    out = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def _block(readme: str, heading: str) -> str:
    match = re.search(rf"^## {heading}\n+```bash\n(.*?)```", readme, re.M | re.S)
    assert match, f"README.md needs a '## {heading}' section with one bash block"
    return match.group(1).strip()


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    command = _block(readme, "Tests")
    assert command in (ROOT / ".ci" / "run").read_text()
    assert "edt run" in _block(readme, "Quick start")
