"""The job page's data, and the job page as one self-contained HTML file (the report).

The dashboard (api/web/) fetches the same pieces from /v1 while a job runs; the report
inlines them, with plotly.js and the page script, so that it opens offline from file://.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import plotly

from api.views import job_public
from jobs import insights
from jobs.registry import JobRecord
from jobs.storage import ResultStore

WEB = Path(__file__).with_name("web")
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
# No network at all from a report: only its own inline scripts and styles.
REPORT_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)


def _tornado(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """One-at-a-time swings when the job ran them; otherwise rank correlations with the NPV."""
    if not summary:
        return None
    if summary.get("tornado"):
        return {"kind": "one_at_a_time", "bars": summary["tornado"]}
    rho = (summary.get("npv") or {}).get("spearman") or {}
    bars = [{"parameter": k, "rho": v} for k, v in rho.items() if v is not None]
    bars.sort(key=lambda b: -abs(b["rho"]))
    return {"kind": "rank_correlation", "bars": bars} if bars else None


def _read(store: ResultStore, job_id: str, name: str) -> Any:
    try:
        return store.read_json(job_id, name)
    except FileNotFoundError:
        return None


def job_figures(record: JobRecord, store: ResultStore) -> dict[str, Any]:
    """What the job page draws: histogram, S-curve, build shares (from the Parquet parts),
    tornado (summary.json), convergence (convergence.json). Raises FileNotFoundError before
    the first part is committed."""
    out = insights.figures(store, record.id)
    summary = _read(store, record.id, "summary.json")
    out["tornado"] = _tornado(summary)
    out["convergence"] = _read(store, record.id, "convergence.json") or (summary or {}).get(
        "convergence"
    )
    return out


def page_data(record: JobRecord, store: ResultStore) -> dict[str, Any]:
    """Everything the job page shows, as the report inlines it."""
    data: dict[str, Any] = {
        "job": job_public(record, store).model_dump(mode="json"),
        "summary": _read(store, record.id, "summary.json"),
    }
    try:
        data["figures"] = job_figures(record, store)
        data["discovery"] = insights.discover(store, record.id)
    except (FileNotFoundError, KeyError) as exc:
        data.setdefault("figures", None)
        data["discovery"] = {"error": str(exc).strip("'\"")}
    return data


def _inline_json(obj: Any) -> str:
    # "</" would end the script element early; "<\/" is the same JSON string.
    return json.dumps(obj, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")


def render_report(data: dict[str, Any]) -> str:
    """The job page as one HTML file: plotly.js, the page script, styles and data inlined."""
    title = f"EDT report: {data['job']['name']} ({data['job']['id']})"
    style = (WEB / "style.css").read_text(encoding="utf-8")
    script = (WEB / "app.js").read_text(encoding="utf-8")
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">'
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{_escape(title)}</title><style>{style}</style></head>\n<body>"
        '<main id="app"></main>\n'
        f'<script type="application/json" id="edt-data">{_inline_json(data)}</script>\n'
        f"<script>{PLOTLY_JS.read_text(encoding='utf-8')}</script>\n"
        f"<script>{script}</script>\n</body></html>\n"
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
