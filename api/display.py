"""How the CLI shows a job: its summary table and an adaptive run's intervals."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


def fmt(x: Any, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x * 100:.2f}%" if pct else f"{x:,.3f}"


def print_summary(job_id: str, summary: dict[str, Any], store: Any) -> None:
    npv, irr = summary["npv"], summary["irr"]
    cur = summary.get("currency", "")
    t = Table(title=f"{summary['job']} ({job_id}), money in {cur}", show_header=True)
    t.add_column("figure")
    t.add_column("value", justify="right")
    rows = [
        (
            "scenarios",
            f"{summary['scenarios']:,} ("
            + ", ".join(f"{k} {v:,}" for k, v in summary["status_counts"].items() if v)
            + ")",
        ),
        ("NPV mean", fmt(npv.get("mean"))),
        ("NPV P5", fmt(npv.get("p5"))),
        ("NPV P50", fmt(npv.get("p50"))),
        ("NPV P95", fmt(npv.get("p95"))),
        ("P(NPV<0)", fmt(npv.get("prob_negative"), pct=True)),
        ("NPV CVaR 95%", fmt(npv.get("cvar95"))),
        ("IRR median", fmt(irr.get("p50"), pct=True)),
    ]
    conv = summary.get("convergence")
    if conv:
        how = "targets met" if conv["met"] else "max_samples reached, targets not met"
        rows.append(("stopped", f"{conv['n']:,} of max {conv['max_samples']:,} ({how})"))
        final = [r for r in conv["history"] if r["n"] == conv["n"]]
        rows += [("target", interval_text(r)) for r in final]
    dec = summary.get("decision")
    if dec:
        sched = ", ".join(
            f"{p} {'never' if b < 0 else f'at {b}'}" for p, b in dec["schedule"].items()
        )
        oos = dec["out_of_sample"]
        rows.append(("decision", f"{sched} ({dec['method']})"))
        rows.append(("decision objective", fmt(dec["objective"])))
        rows.append(("VSS / EVPI", f"{fmt(dec['vss'])} / {fmt(dec['evpi'])}"))
        where = "in-sample" if oos.get("in_sample") else f"out-of-sample n={oos['n']:,}"
        rows.append(
            (f"E[NPV] {where}", f"{fmt(oos['mean'])} [{fmt(oos['lower'])}, {fmt(oos['upper'])}]")
        )
    if summary.get("share_built") is not None:
        rows.append(("projects built", fmt(summary["share_built"], pct=True)))
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
    if summary.get("tornado"):
        # One-at-a-time sets: the swings are the answer, not the distribution of 2k+1 points.
        tt = Table("parameter", "NPV at low", "NPV at high", "swing", title="tornado (NPV)")
        for row in summary["tornado"]:
            tt.add_row(row["parameter"], fmt(row["low"]), fmt(row["high"]), fmt(row["swing"]))
        console.print(tt)
    console.print(f"results: {store.url_of(job_id, 'scenarios')}", highlight=False, soft_wrap=True)


def convergence_text(rows: tuple[dict[str, Any], ...]) -> str:
    """The adaptive run at its last checkpoint: the first target not met yet (or the first),
    e.g. `n=1,053: npv mean 4,617.769 [4,518.071, 4,717.467] ±99.698 (goal ±100.000)`."""
    if not rows:
        return ""
    row = next((r for r in rows if not r["met"]), rows[0])
    met = sum(r["met"] for r in rows)
    others = f", {met}/{len(rows)} targets met" if len(rows) > 1 else ""
    return f"n={row['n']:,}: {interval_text(row)}{others}"


def interval_text(row: dict[str, Any]) -> str:
    pct = row["statistic"] == "prob_negative"
    text = f"{row['metric']} {row['statistic']} {fmt(row['estimate'], pct)}"
    if row["half_width"] is None:
        text += " [interval not defined yet]"
    else:
        bounds = f"[{fmt(row['lower'], pct)}, {fmt(row['upper'], pct)}]"
        text += f" {bounds} ±{fmt(row['half_width'], pct)}"
    return text + f" (goal ±{fmt(row['goal'], pct)})"
