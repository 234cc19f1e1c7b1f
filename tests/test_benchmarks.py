"""The benchmarks still run against the current code (they are not part of the suite's figures).

A benchmark that breaks when an API changes is found here, in seconds, rather than by CI's
benchmark step after the whole suite. Sizes are tiny: nothing is read from the printed speeds.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SMALL = {
    "milp_resolve.py": (
        ["2", "--time-limit", "5"],
        r"^speedup_vs_rebuild=[\d.]+ inside_highs=[\d.]+$",
    ),
    "chunk_path.py": (
        ["--chunk-size", "300", "--chunks", "1", "--repeat", "1"],
        r"^chunk_path_scenarios_per_second=\S+ goal=1e5 ratio_to_goal=[\d.]+$",
    ),
    "simulation_bench.py": (["--repeat", "1"], r"^best_per_model=\S+ goal=2e7 ratio_to_goal="),
    "decide.py": (
        ["--samples", "4", "--test-samples", "4", "--block-size", "2"],
        r"^decide_wall_1=\S+ decide_wall_2=\S+ ratio=\S+ solves_per_second_2=\S+ pruning_saved=",
    ),
    "irr_bench.py": (["--rows", "500", "--subset", "50"], r"NaN pattern identical: True"),
}


@pytest.mark.parametrize("script", sorted(SMALL))
def test_benchmark_runs_and_prints_its_figure(script: str) -> None:
    args, last_line = SMALL[script]
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(last_line, out.stdout, re.M), out.stdout[-2000:]
