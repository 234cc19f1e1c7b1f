"""Write the JSON Schemas of model and job files into schemas/ (tests fail when they drift)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edt_compute.model import EnterpriseModel
from jobs.spec import job_json_schema

ROOT = Path(__file__).resolve().parents[1]


def schemas() -> dict[str, dict[str, object]]:
    return {
        "model.schema.json": EnterpriseModel.model_json_schema(),
        "job.schema.json": job_json_schema(),
    }


def main() -> int:
    for name, schema in schemas().items():
        (ROOT / "schemas" / name).write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
