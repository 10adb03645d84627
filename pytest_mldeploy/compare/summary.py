"""The terminal summary of a comparison, read from `compare.json`'s dict (`result.py` documents it)."""
from __future__ import annotations

import json
from typing import Any

_MARK = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "skip": "SKIP"}
#: How much of one value a line shows.
VALUE_CHARS = 100
#: Longer curl lines (generated batches) stay in compare.json.
CURL_CHARS = 400


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def _side(side: dict) -> str:
    extra = f" at {side['revision'][:10]}" if side.get("revision") else f" image {side['image']}" if side.get("image") else ""
    return side["deployment"] if side["spec"] == side["deployment"] else f"{side['spec']} ({side['deployment']}{extra})"


def _figure(value: Any, unit: str) -> str:
    return "n/a" if value is None or isinstance(value, str) else f"{value:.1f}{unit}"


def format_summary(data: dict[str, Any]) -> str:
    """Several lines: the two sides, one line per gate, the worst rows and the speed table."""
    lines = [f"compare: candidate {_side(data['candidate'])} against baseline {_side(data['baseline'])} "
             f"on the {data['target']} target (cpu {data['limits']['cpu']:g}, memory {data['limits']['memory_gb']:g} GB), "
             f"{data['requests']['total']} requests ({', '.join(f'{n} {k}' for k, n in data['requests']['byKind'].items()) or 'none'})"]
    for gate in data["gates"]:
        lines.append(f"  {_MARK[gate['status']]} {gate['name']}: {gate['message']}")
    answers = data["answers"]
    for mismatch in answers["statusMismatches"][:3]:
        lines.append(f"    {mismatch['request']}: baseline {mismatch['baseline']} {_short(mismatch['baselineBody'])}")
        lines.append(f"    {' ' * len(mismatch['request'])}  candidate {mismatch['candidate']} {_short(mismatch['candidateBody'])}")
    if answers["worstRows"]:
        lines.append("  worst rows (baseline | candidate):")
        for row in answers["worstRows"]:
            where = f"{row['request']}" + (f" row {row['row']}" if row["row"] is not None else "")
            lines.append(f"    {where}: {_short(row['baseline'])} | {_short(row['candidate'])}  "
                         f"(|diff| {_short(row['maxAbs'])}, rel {_short(row['maxRel'])})")
            if row.get("input") is not None:
                lines.append(f"      input: {_short(row['input'])}")
            curl = (row.get("curl") or {}).get("candidate", "")
            if curl:
                lines.append(f"      {curl}" if len(curl) <= CURL_CHARS else "      (its curl lines are in compare.json)")
    contract = data["contract"]
    lines += [f"  breaking: {line}" for line in contract["breaking"]]
    lines += [f"  added: {line}" for line in contract["additions"]]
    speed = data["speed"]
    if not speed.get("skipped"):
        b, c = speed["baseline"], speed["candidate"]
        lines.append("  speed and size        baseline   candidate")
        for label, key, unit in (("p50 latency", "p50_ms", " ms"), ("p95 latency", "p95_ms", " ms"), ("throughput", "qps", "/s"),
                                 ("peak memory", "peak_memory_mb", " MB"), ("CPU per request", "cpu_ms_per_request", " ms"),
                                 ("image size", "image_size_mb", " MB"), ("cold start", "cold_start_s", " s")):
            lines.append(f"    {label:<18}{_figure(b.get(key), unit):>11} {_figure(c.get(key), unit):>11}")
    lines += [f"  note: {note}" for note in data["notes"]]
    lines.append("compare PASSED" if data["passed"] else
                 "compare FAILED: " + ", ".join(g["name"] for g in data["gates"] if g["status"] == "fail"))
    return "\n".join(lines)
