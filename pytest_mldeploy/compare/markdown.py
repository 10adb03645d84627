"""A short Markdown summary of a comparison, fit for a pull-request comment or `$GITHUB_STEP_SUMMARY`.

Read from `compare.json`'s dict (`result.py` documents it), so it can be rendered again later
from the file alone.
"""
from __future__ import annotations

import json
from typing import Any

_ICON = {"pass": "✅", "fail": "❌", "warn": "⚠️", "skip": "⏭️"}
#: How much of one value a table cell shows.
CELL_CHARS = 80


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def _figure(value: Any, unit: str) -> str:
    return "n/a" if value is None or isinstance(value, str) else f"{value:.1f}{unit}"


def render_markdown(data: dict[str, Any]) -> str:
    """The comparison as Markdown: verdict, gates table, worst rows, contract changes, speed table."""
    verdict = "passed" if data["passed"] else "failed"
    lines = [
        f"### mldeploy compare {verdict}: `{data['candidate']['spec']}` against `{data['baseline']['spec']}`",
        "",
        f"{data['requests']['total']} requests to both on the {data['target']} target "
        f"(cpu {data['limits']['cpu']:g}, memory {data['limits']['memory_gb']:g} GB).",
        "",
        "| gate | result | details |",
        "|---|---|---|",
    ]
    for gate in data["gates"]:
        message = gate["message"].replace("|", "\\|")
        lines.append(f"| {gate['name']} | {_ICON[gate['status']]} {gate['status']} | {message} |")
    rows = data["answers"]["worstRows"]
    if rows:
        lines += ["", "**Answers that differ most**", "", "| request | input | baseline | candidate |", "|---|---|---|---|"]
        for row in rows:
            where = row["request"] + (f" row {row['row']}" if row["row"] is not None else "")
            shown_input = _cell(row["input"]) if row.get("input") is not None else ""
            lines.append(f"| {where} | {shown_input} | {_cell(row['baseline'])} | {_cell(row['candidate'])} |")
    contract = data["contract"]
    if contract["breaking"] or contract["additions"]:
        lines += ["", "**Contract**", ""]
        lines += [f"- breaking: {line}" for line in contract["breaking"]]
        lines += [f"- added: {line}" for line in contract["additions"]]
    speed = data["speed"]
    if not speed.get("skipped"):
        b, c = speed["baseline"], speed["candidate"]
        lines += ["", "| | baseline | candidate |", "|---|---|---|"]
        for label, key, unit in (("p95 latency", "p95_ms", " ms"), ("throughput", "qps", " req/s"),
                                 ("peak memory", "peak_memory_mb", " MB"), ("CPU per request", "cpu_ms_per_request", " ms"),
                                 ("image size", "image_size_mb", " MB"), ("cold start", "cold_start_s", " s")):
            lines.append(f"| {label} | {_figure(b.get(key), unit)} | {_figure(c.get(key), unit)} |")
    return "\n".join(lines) + "\n"
