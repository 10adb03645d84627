"""profile.json (Azure ML's field names where they exist, ours beside them) and profile.html.

Azure's `ModelProfile` fields: requestedCpu, requestedMemoryInGb, requestedQueriesPerSecond,
maxUtilizedCpu, maxUtilizedMemoryInGb, measuredQueriesPerSecond, totalQueries, successQueries,
successRate (percent, as Azure reports it), averageLatencyInMs and latencyPercentile{50,90,95,99}InMs.
The HTML is one self-contained file: charts are inline PNGs, styles inline, no scripts.
"""
from __future__ import annotations

import datetime as dt
import html
import json
import math
import os
from pathlib import Path
from typing import Any

from pytest_mldeploy.checks.profiling import charts
from pytest_mldeploy.checks.profiling.recommend import GIB
from pytest_mldeploy.checks.profiling.result import ProfileResult

#: The fields Azure ML's profile reports, in its spelling.
AZURE_FIELDS = (
    "requestedCpu",
    "requestedMemoryInGb",
    "requestedQueriesPerSecond",
    "maxUtilizedCpu",
    "maxUtilizedMemoryInGb",
    "measuredQueriesPerSecond",
    "totalQueries",
    "successQueries",
    "successRate",
    "averageLatencyInMs",
    "latencyPercentile50InMs",
    "latencyPercentile90InMs",
    "latencyPercentile95InMs",
    "latencyPercentile99InMs",
)


def _clean(value: Any) -> Any:
    """NaN and infinities become null: profile.json stays strict JSON."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _steady_samples(result: ProfileResult) -> list[Any]:
    window = next(((a, b) for label, a, b in result.phases if label == "steady"), None)
    if window is None:
        return list(result.samples)
    return [s for s in result.samples if window[0] <= s.t <= window[1]]


def figures_of(result: ProfileResult) -> dict[str, Any]:
    """The headline figures: Azure's fields plus errorRate, concurrency and the verdict (what gates read)."""
    steady, recommendation = result.steady, result.recommendation
    window = _steady_samples(result)
    return {
        "requestedCpu": recommendation.cpu,
        "requestedMemoryInGb": recommendation.memory_gb,
        "requestedQueriesPerSecond": round(steady.qps, 1),
        "maxUtilizedCpu": max((s.cpu for s in window), default=float("nan")),
        "maxUtilizedMemoryInGb": max((s.memory for s in window), default=float("nan")) / GIB,
        "measuredQueriesPerSecond": steady.qps,
        "totalQueries": steady.total,
        "successQueries": steady.success,
        "successRate": 100.0 * steady.success_rate,
        "averageLatencyInMs": steady.latency_avg_ms,
        "latencyPercentile50InMs": steady.latency_p50_ms,
        "latencyPercentile90InMs": steady.latency_p90_ms,
        "latencyPercentile95InMs": steady.latency_p95_ms,
        "latencyPercentile99InMs": steady.latency_p99_ms,
        "errorRate": steady.error_rate,
        "concurrency": result.concurrency,
        "verdict": result.verification.verdict,
        "memoryLeak": result.growth.leak,
        "cpuFloor": recommendation.cpu_floor,
        "estimatesSettled": result.stability.stable if result.stability else None,
    }


def profile_json(result: ProfileResult) -> dict[str, Any]:
    """The whole profile as profile.json holds it."""
    t0 = result.samples[0].t if result.samples else result.started_at
    return _clean(
        {
            "name": result.deployment,
            "target": result.target,
            "service": result.service,
            "createdTime": dt.datetime.fromtimestamp(result.started_at, dt.timezone.utc).isoformat(),
            "durationSeconds": result.elapsed_s,
            "state": "Succeeded",
            **figures_of(result),
            "workload": result.workload,
            "settings": result.settings,
            "currentResources": {"cpu": result.current_cpu, "memoryInGb": result.current_memory_gb},
            "recommendation": {
                **result.recommendation.to_dict(),
                "initial": result.initial_recommendation.to_dict(),
                "method": (
                    "cpu: 90th percentile of per-second CPU use in the steady phase x (1 + margin), rounded up to 0.1 "
                    "core, at least min_cpu; memory: peak working set x (1 + margin), rounded up to 0.1 GB, at least "
                    "min_memory_gb; cpu capped at the host's cores; raised x1.5 cpu / x1.25 memory when the closed "
                    "loop clearly does not hold"
                ),
            },
            "verification": result.verification.to_dict(),
            "memoryGrowth": result.growth.to_dict(),
            "stability": result.stability.to_dict() if result.stability else None,
            "gates": [g.to_dict() for g in result.gates],
            "gatesPassed": result.gates_passed,
            "gateRounds": [{**r.to_dict(), "start": r.start - t0, "end": r.end - t0} for r in result.gate_rounds],
            "hostCores": result.host_cores,
            "sweep": [s.to_dict() for s in result.sweep],
            "sweepStopReason": result.sweep_reason,
            "concurrencyReason": result.concurrency_reason,
            "steady": result.steady.to_dict(),
            "phases": [{"label": label, "start": a - t0, "end": b - t0} for label, a, b in result.phases],
            "samples": [{"t": s.t - t0, "cpu": s.cpu, "memoryInGb": s.memory / GIB} for s in result.samples],
            "loadGenerator": {"tool": "locust (FastHttpUser)", "processes": result.load_processes, "maxProcessCpu": result.generator_cpu},
            "warnings": result.warnings,
        }
    )


#: The reports' look (the profile's and the compare report's): one stylesheet, inline.
PAGE_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:60rem;color:#1f2328;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
.sub{color:#57606a;margin-top:0}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{border:1px solid #d0d7de;border-radius:8px;padding:.7rem 1rem;min-width:9rem;background:#f6f8fa}
.card .v{font-size:1.5rem;font-weight:600} .card .l{color:#57606a;font-size:.85rem}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:1rem;font-weight:600;color:#fff}
.ok{background:#1a7f37} .bad{background:#cf222e} .warn{background:#9a6700} .na{background:#6e7781}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0} th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:right}
th{background:#f6f8fa} td:first-child,th:first-child{text-align:left}
tr.chosen td{background:#dafbe1}
img{max-width:100%;border:1px solid #d0d7de;border-radius:6px;margin:.4rem 0}
.warnings li{color:#9a6700} code{background:#f6f8fa;padding:0 .2rem;border-radius:3px}
"""

_VERDICT_CLASS = {"verified": "ok", "raised": "warn", "failed": "bad", "unverified": "na", "inconclusive": "warn"}
_GATE_BADGE = {"pass": ("ok", "pass"), "fail": ("bad", "FAIL"), "inconclusive": ("warn", "inconclusive")}


def _n(value: Any, fmt: str = "{:.1f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return fmt.format(value)


def card(value: str, label: str) -> str:
    """One headline figure: the value large, its label under it (both escaped)."""
    return f'<div class="card"><div class="v">{html.escape(value)}</div><div class="l">{html.escape(label)}</div></div>'


def profile_html(result: ProfileResult) -> str:
    """The profile as one self-contained HTML page."""
    e = html.escape
    figures = figures_of(result)
    rec, steady, verification = result.recommendation, result.steady, result.verification
    steady_window = next(((a, b) for label, a, b in result.phases if label == "steady"), None)
    cpu_chart = charts.usage_chart(
        result.samples, "cpu", title="CPU over time", unit="cores", scale=1.0,
        current=result.current_cpu, recommended=rec.cpu, steady=steady_window,
    )  # fmt: skip
    memory_chart = charts.usage_chart(
        result.samples, "memory", title="Memory (working set) over time", unit="GB", scale=GIB,
        current=result.current_memory_gb, recommended=rec.memory_gb, steady=steady_window,
    )  # fmt: skip
    sweep_chart = charts.sweep_chart(result.sweep, result.concurrency)
    gate_rows = "".join(
        f"<tr><td>{e(g.label)}</td><td>{_n(g.measured, '{:.4g}')}</td><td>{g.limit:g}</td>"
        f'<td><span class="badge {_GATE_BADGE[g.verdict][0]}">{_GATE_BADGE[g.verdict][1]}</span></td><td style="text-align:left">{e(g.message)}</td></tr>'
        for g in result.gates
    ) or '<tr><td colspan="5">no gates set (<code>gates:</code> in mldeploy.yaml)</td></tr>'
    sweep_rows = "".join(
        f'<tr class="{"chosen" if s.concurrency == result.concurrency else ""}"><td>{s.concurrency}</td><td>{_n(s.qps)}</td>'
        f"<td>{_n(s.latency_p50_ms)}</td><td>{_n(s.latency_p95_ms)}</td><td>{_n(s.latency_p99_ms)}</td>"
        f"<td>{s.total}</td><td>{s.error_rate:.1%}</td></tr>"
        for s in result.sweep
    )
    attempt_rows = "".join(
        f"<tr><td>{a.cpu:g} cores / {a.memory_gb:g} GB</td><td>{_n(a.inspected_cpu, '{:g}')} / {_n(a.inspected_memory_gb, '{:.3g}')}</td>"
        f"<td>{_n(a.stats.qps if a.stats else None)} / {_n(a.reference.qps if a.reference else None)}</td>"
        f"<td>{_n(a.stats.latency_p95_ms if a.stats else None)} / {_n(a.reference.latency_p95_ms if a.reference else None)}</td>"
        f"<td>{a.comparison.pairs if a.comparison else 0}</td><td>{e(a.method or '–')}</td>"
        f'<td style="text-align:left">{e(a.verdict)}{(": " + e("; ".join(a.problems))) if a.problems else ""}</td></tr>'
        for a in verification.attempts
    )
    attempts = (
        "<table><tr><th>limits tried</th><th>container got (cores / GB)</th><th>req/s (limits / reference)</th>"
        "<th>p95 ms (limits / reference)</th><th>round pairs</th><th>how</th><th>outcome</th></tr>"
        f"{attempt_rows}</table>"
        if verification.attempts
        else ""
    )
    warnings = "".join(f"<li>{e(w)}</li>" for w in result.warnings)
    gates_badge = (
        '<span class="badge bad">gates FAILED</span>' if not result.gates_passed
        else '<span class="badge warn">gates inconclusive</span>' if any(g.inconclusive for g in result.gates)
        else '<span class="badge ok">gates passed</span>'
    )  # fmt: skip
    growth = result.growth
    created = dt.datetime.fromtimestamp(result.started_at).strftime("%Y-%m-%d %H:%M:%S")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Profile of {e(result.deployment)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{PAGE_CSS}</style></head>
<body>
<h1>Profile of <code>{e(result.deployment)}</code></h1>
<p class="sub">{e(result.service)} · {e(created)} · took {result.elapsed_s:.0f} s ·
verification <span class="badge {_VERDICT_CLASS.get(verification.verdict, 'na')}">{e(verification.verdict)}</span> {gates_badge}</p>
<div class="cards">
{card(f"{rec.cpu:g} cores", "recommended CPU (a floor)" if rec.cpu_floor else "recommended CPU")}
{card(f"{rec.memory_gb:g} GB", "recommended memory")}
{card(f"{steady.qps:.1f}", f"req/s at {result.concurrency} concurrent")}
{card(_n(steady.latency_p95_ms) + " ms", "latency p95")}
{card(f"{figures['successRate']:.2f} %", "success rate")}
</div>
<p><b>Verification:</b> {e(verification.reason)}</p>
{attempts}
{f'<p><b>CPU:</b> {e(rec.cpu_note)}.</p>' if rec.cpu_note else ''}
{f'<p><b>Confidence:</b> {e(result.stability.confidence)}; {"settled" if result.stability.stable else "not settled"}: {e(result.stability.reason)}.</p>' if result.stability else ''}
<p><b>Method:</b> {e(rec.basis)}. Current limits: {_n(result.current_cpu, '{:g}')} cores, {_n(result.current_memory_gb, '{:g}')} GB.</p>
{f'<h2>Warnings</h2><ul class="warnings">{warnings}</ul>' if warnings else ''}
<h2>Gates</h2>
<table><tr><th>gate</th><th>measured</th><th>limit</th><th>verdict</th><th>detail</th></tr>{gate_rows}</table>
<h2>Latency and throughput</h2>
<img alt="latency percentiles and throughput against concurrency" src="{sweep_chart}">
<table><tr><th>concurrency</th><th>req/s</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>requests</th><th>errors</th></tr>{sweep_rows}</table>
<p>{e(result.sweep_reason)}; {e(result.concurrency_reason)}. Steady phase: {steady.window_s:.1f} s, {steady.total} requests,
p50 {_n(steady.latency_p50_ms)} ms, p90 {_n(steady.latency_p90_ms)} ms, p99 {_n(steady.latency_p99_ms)} ms.</p>
<h2>CPU and memory</h2>
<img alt="CPU use over time with the limits" src="{cpu_chart}">
<img alt="memory use over time with the limits" src="{memory_chart}">
<p><b>Memory growth</b> in the steady phase: {growth.slope_mb_per_min:+.1f} MB/min, r² {growth.r2:.2f}
({growth.samples} samples). {e(growth.reason)}.</p>
<h2>Workload</h2>
<p>{e(result.workload)}; Locust FastHttpUser, {result.load_processes} load process(es), busiest at {result.generator_cpu:.2f} cores.</p>
</body></html>
"""


def write_reports(result: ProfileResult, out_dir: Path) -> tuple[Path, Path]:
    """Write profile.json and profile.html into `out_dir` (created); returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "profile.json", out_dir / "profile.html"
    _atomic_write(json_path, json.dumps(profile_json(result), indent=2, allow_nan=False) + "\n")
    _atomic_write(html_path, profile_html(result))
    return json_path, html_path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
