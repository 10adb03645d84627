"""A short Markdown summary of a comparison, fit for a pull-request comment or `$GITHUB_STEP_SUMMARY`.

GitHub-flavoured: the verdict line, one table of gates, the few answers that differ most, then
collapsible details (contract changes, speed and size, other status codes, a curl line). Read
from `compare.json`'s dict (`result.py` documents it), so it can be rendered again later from the
file alone. It stays under GitHub's comment limit (`MAX_CHARS`) however large the diff: every
list is cut to a few items and, should that not be enough, the details go before the table does.
Text that came from a service is put in code spans or fences, or has its HTML escaped.
"""
from __future__ import annotations

import json
from typing import Any

_ICON = {"pass": "✅", "fail": "❌", "warn": "⚠️", "skip": "⏭️"}
#: GitHub refuses a comment body over 65,536 characters; this leaves room for what a CI step adds.
MAX_CHARS = 60_000
#: How much of one value a table cell shows.
CELL_CHARS = 80
#: How much of one gate's explanation the table shows (the terminal summary and compare.html have all).
MESSAGE_CHARS = 300
#: The answers that differ most shown outside the details.
SHOWN_ROWS = 3
#: How many contract changes of each kind the details list.
SHOWN_ITEMS = 15
#: How many requests answered with another status the details list.
SHOWN_MISMATCHES = 5
#: A longer curl line (a generated batch) is left to compare.json.
CURL_CHARS = 1000


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(value: Any) -> str:
    """A value as a code span in a table cell: cut short, no pipe or backtick to break out of it."""
    text = value if isinstance(value, str) else json.dumps(value)
    return "`" + _cut(text, CELL_CHARS).replace("|", "\\|").replace("`", "'").replace("\n", " ") + "`"


def _text(value: str, limit: int = MESSAGE_CHARS) -> str:
    """Plain text in a table cell or a list: one line, cut short, HTML and pipes escaped."""
    text = _cut(" ".join(str(value).split()), limit)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _figure(value: Any, unit: str) -> str:
    return "n/a" if value is None or isinstance(value, str) else f"{value:.1f}{unit}"


def _ratio(old: Any, new: Any) -> str:
    if not isinstance(old, (int, float)) or not isinstance(new, (int, float)) or not old:
        return ""
    return f"{new / old:.2f}x"


def _details(summary: str, body: list[str]) -> list[str]:
    return ["", f"<details><summary>{summary}</summary>", "", *body, "", "</details>"]


def _listed(items: list[str], prefix: str) -> list[str]:
    lines = [f"- {prefix}{_text(item)}" for item in items[:SHOWN_ITEMS]]
    if len(items) > SHOWN_ITEMS:
        lines.append(f"- … and {len(items) - SHOWN_ITEMS} more (compare.json)")
    return lines


def _head(data: dict[str, Any]) -> list[str]:
    verdict = "passed" if data["passed"] else "failed"
    failed = [g["name"] for g in data["gates"] if g["status"] == "fail"]
    warned = [g["name"] for g in data["gates"] if g["status"] == "warn"]
    line = ("✅ **Passed**" if data["passed"] else f"❌ **Failed on {', '.join(failed)}**") + (
        f" (⚠️ {', '.join(warned)})" if warned else "")
    lines = [
        f"### mldeploy compare {verdict}: `{_cut(data['candidate']['spec'], 100)}` against `{_cut(data['baseline']['spec'], 100)}`",
        "",
        f"{line}: {data['requests']['total']} requests to both on the {data['target']} target "
        f"(cpu {data['limits']['cpu']:g}, memory {data['limits']['memory_gb']:g} GB).",
        "",
        "| gate | result | details |",
        "|---|---|---|",
    ]
    for gate in data["gates"]:
        lines.append(f"| {gate['name']} | {_ICON[gate['status']]} {gate['status']} | {_text(gate['message'])} |")
    return lines


def _worst(data: dict[str, Any]) -> list[str]:
    rows = data["answers"]["worstRows"]
    if not rows:
        return []
    lines = ["", f"**Answers that differ most** ({min(len(rows), SHOWN_ROWS)} shown; compare.html has the rest)", "",
             "| request | input | baseline | candidate |", "|---|---|---|---|"]
    for row in rows[:SHOWN_ROWS]:
        where = _text(row["request"] + (f" row {row['row']}" if row["row"] is not None else ""), CELL_CHARS)
        shown_input = _cell(row["input"]) if row.get("input") is not None else ""
        lines.append(f"| {where} | {shown_input} | {_cell(row['baseline'])} | {_cell(row['candidate'])} |")
    return lines


def _fence(lines: list[str]) -> list[str]:
    return ["```sh", *(line.replace("```", "'''") for line in lines), "```"]


def _more(data: dict[str, Any]) -> list[str]:
    """The collapsible sections: contract, speed and size, other status codes, the worst request's curl line."""
    out: list[str] = []
    contract = data["contract"]
    if contract["breaking"] or contract["additions"]:
        out += _details(f"Contract: {len(contract['breaking'])} breaking, {len(contract['additions'])} added",
                        _listed(contract["breaking"], "breaking: ") + _listed(contract["additions"], "added: "))
    speed = data["speed"]
    if not speed.get("skipped"):
        b, c = speed["baseline"], speed["candidate"]
        table = ["| | baseline | candidate | ratio |", "|---|---|---|---|"]
        for label, key, unit in (("p50 latency", "p50_ms", " ms"), ("p95 latency", "p95_ms", " ms"), ("throughput", "qps", " req/s"),
                                 ("peak memory", "peak_memory_mb", " MB"), ("CPU per request", "cpu_ms_per_request", " ms"),
                                 ("image size", "image_size_mb", " MB"), ("cold start", "cold_start_s", " s")):
            table.append(f"| {label} | {_figure(b.get(key), unit)} | {_figure(c.get(key), unit)} | {_ratio(b.get(key), c.get(key))} |")
        if speed.get("concurrency"):
            table += ["", f"Concurrency {speed['concurrency']}, alternating rounds of {speed['roundSeconds']:g} s."]
        out += _details("Speed and size", table)
    mismatches = data["answers"]["statusMismatches"]
    if mismatches:
        shown = [f"- {_text(m['request'], CELL_CHARS)}: baseline {m['baseline']} {_cell(m['baselineBody'])}, "
                 f"candidate {m['candidate']} {_cell(m['candidateBody'])}" for m in mismatches[:SHOWN_MISMATCHES]]
        if len(mismatches) > SHOWN_MISMATCHES:
            shown.append(f"- … and {len(mismatches) - SHOWN_MISMATCHES} more (compare.json)")
        out += _details(f"Requests answered with another status ({len(mismatches)})", shown)
    first = (data["answers"]["worstRows"][:1] or mismatches[:1] or [{}])[0]
    curl = (first.get("curl") or {}).get("candidate", "")
    if curl and len(curl) <= CURL_CHARS:
        out += _details(f"Reproduce {_text(first['request'], CELL_CHARS)} with curl (the port was the run's: "
                        "point it at a service you serve; a key is read from $MLDEPLOY_KEY)", _fence([curl]))
    return out


def render_markdown(data: dict[str, Any]) -> str:
    """The comparison as GitHub-flavoured Markdown, under `MAX_CHARS` (see the module doc)."""
    head, worst = _head(data), _worst(data)
    full = "\n".join(head + worst + _more(data)) + "\n"
    # Every list above is cut short, so this holds by construction; the fallback keeps it so if a list is not.
    return full if len(full) <= MAX_CHARS else "\n".join(head + worst) + "\n"
