"""`compare.html`: one self-contained page for a comparison, rendered from `compare.json`'s dict alone.

Only the dict (`result.py` documents it) is read, so a saved `compare.json` renders the same page
again (`render_html(json.load(...))`). The look is the profile report's (`PAGE_CSS`, its cards, its
chart helpers); charts are inline PNGs, styles inline, and there is no script. Everything a service
answered is escaped, and the page's Content-Security-Policy allows no script and no remote load
at all, so a response body holding `<script>` is shown, never run.
"""
from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any, Optional

from pytest_mldeploy.checks.profiling.report import PAGE_CSS, card
from pytest_mldeploy.compare import charts

#: No script, no remote resource, no form: the page can only show itself.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'"
#: How much of one value (a body, an answer, an input row) a cell shows; compare.json has more.
SHOWN_CHARS = 2000
#: How many requests answered with another status the page lists (compare.json has them all).
SHOWN_MISMATCHES = 20

_EXTRA_CSS = """
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:.4rem .6rem;margin:.2rem 0;white-space:pre-wrap;
word-break:break-all;font-size:.8rem;text-align:left}
td.l,th.l{text-align:left} td.pair{width:42%;vertical-align:top;text-align:left} .bad-text{color:#cf222e} .muted{color:#57606a}
details{margin:.3rem 0} summary{cursor:pointer;color:#0969da}
"""
_BADGE = {"pass": ("ok", "pass"), "fail": ("bad", "FAIL"), "warn": ("warn", "warn"), "skip": ("na", "skipped"),
          "inconclusive": ("warn", "inconclusive")}
_GATE_TITLE = {"answers": "answers", "contract": "contract", "speed": "speed and size", "sensitivity": "input sensitivity"}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _badge(status: str) -> str:
    css, text = _BADGE.get(status, ("na", status))
    return f'<span class="badge {css}">{_e(text)}</span>'


def _shown(value: Any) -> str:
    """A JSON value (or a text) as it is shown: JSON, cut at `SHOWN_CHARS`, escaped."""
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text) > SHOWN_CHARS:
        text = text[:SHOWN_CHARS] + f"… ({len(text) - SHOWN_CHARS} more characters in compare.json)"
    return _e(text)


def _number(value: Any) -> Optional[float]:
    if value is None:
        return None
    try:
        return float(value)  # the "inf" / "nan" strings compare.json writes too
    except (TypeError, ValueError):
        return None


def _fig(value: Any, unit: str = "", fmt: str = "{:.1f}") -> str:
    number = _number(value)
    if number is None or math.isnan(number):
        return "–"
    if math.isinf(number):
        return "∞"
    return fmt.format(number) + unit


def _ratio(old: Any, new: Any) -> str:
    a, b = _number(old), _number(new)
    if a is None or b is None or not a or not (math.isfinite(a) and math.isfinite(b)):
        return "–"
    return f"{b / a:.2f}x"


def _side(side: dict[str, Any]) -> str:
    extra = [f"kind {side['kind']}"]
    if side.get("revision"):
        extra.append(f"revision {side['revision'][:12]}")
    if side.get("image"):
        extra.append(f"image {side['image']}")
    return (f"<code>{_e(side['spec'])}</code> → deployment <code>{_e(side['deployment'])}</code> "
            f'<span class="muted">({_e(", ".join(extra))}; {_e(side.get("config") or "")})</span>')


def thresholds(data: dict[str, Any]) -> dict[str, str]:
    """Each gate's settings in words: what it was judged against (`compare:` in mldeploy.yaml)."""
    settings = data.get("settings") or {}
    answers = data["answers"]
    tolerance = answers.get("tolerance") or {}
    out = {
        "answers": (f"|a − b| ≤ {tolerance['atol']:g} + {tolerance['rtol']:g} × |baseline| per number; "
                    f"rows allowed outside: {answers.get('maxMismatchShare', 0):.0%}; labels allowed to flip: "
                    f"{answers.get('maxLabelFlipShare', 0):.0%}; status codes equal"
                    if tolerance else "status codes equal; answers within tolerance"),
        "contract": ("breaking changes fail" if (settings.get("contract") or {}).get("fail_on_breaking", True)
                     else "breaking changes warn (contract.fail_on_breaking: false)"),
        "sensitivity": ("a constant candidate fails" if (settings.get("sensitivity") or {}).get("fail_on_constant", True)
                        else "a constant candidate warns (sensitivity.fail_on_constant: false)"),
    }
    speed = settings.get("speed")
    if speed:
        limits = [f"{label} ≤ {speed[key]:g}x" for label, key in (
            ("memory", "max_memory_ratio"), ("CPU per request", "max_cpu_per_request_ratio"),
            ("image", "max_image_size_ratio"), ("cold start", "max_cold_start_ratio")) if speed.get(key) is not None]
        out["speed"] = (f"p50 and p95 ≤ {speed['p95_ratio']:g} × baseline + {speed['p95_slack_ms']:g} ms, throughput ≥ "
                        f"{speed['throughput_ratio']:.0%} of baseline, beyond the rounds' noise; concurrency "
                        f"{speed['concurrency']}, {speed['rounds']} rounds of {speed['round_s']:g} s"
                        + ("; " + ", ".join(limits) if limits else ""))
    else:
        out["speed"] = "latency and throughput beyond the rounds' noise"
    return out


def _gates(data: dict[str, Any]) -> str:
    words = thresholds(data)
    rows = "".join(
        f'<tr><td class="l"><a href="#{_e(g["name"])}">{_e(_GATE_TITLE.get(g["name"], g["name"]))}</a></td>'
        f'<td class="l">{_badge(g["status"])}</td><td class="l">{_e(g["message"])}</td>'
        f'<td class="l muted">{_e(words.get(g["name"], ""))}</td></tr>'
        for g in data["gates"])
    return f'<table><tr><th>gate</th><th class="l">verdict</th><th class="l">details</th><th class="l">threshold</th></tr>{rows}</table>'


def _curls(curl: Optional[dict[str, str]]) -> str:
    if not curl:
        return ""
    lines = "".join(f"<div class=\"muted\">{_e(role)}</div><pre>{_e(line)}</pre>" for role, line in curl.items() if line)
    return f"<details><summary>curl lines (the key, if any, is read from $MLDEPLOY_KEY)</summary>{lines}</details>"


def _status(code: Any) -> str:
    """An HTTP status as a badge: green for 200, red otherwise, grey for no answer at all."""
    css = "na" if code is None else "ok" if code == 200 else "bad"
    return f'<span class="badge {css}">{_e("no answer" if code is None else code)}</span>'


def _status_mismatches(mismatches: list[dict[str, Any]]) -> str:
    if not mismatches:
        return ""
    more = len(mismatches) - SHOWN_MISMATCHES
    rows = "".join(
        f'<tr><td class="l">{_e(m["request"])} <span class="muted">({_e(m["kind"])})</span></td>'
        f'<td class="pair">{_status(m["baseline"])}<pre>{_shown(m["baselineBody"])}</pre></td>'
        f'<td class="pair">{_status(m["candidate"])}<pre>{_shown(m["candidateBody"])}</pre></td></tr>'
        f'<tr><td></td><td colspan="2" class="l">{_curls(m.get("curl"))}</td></tr>'
        for m in mismatches[:SHOWN_MISMATCHES])
    return (f"<h3>Requests answered with another status ({len(mismatches)})</h3>"
            f'<table><tr><th class="l">request</th><th class="l">baseline</th><th class="l">candidate</th></tr>{rows}</table>'
            + (f'<p class="muted">{more} more in compare.json.</p>' if more > 0 else ""))


def _worst_rows(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>No answer row differs beyond the tolerance.</p>"
    out = []
    for row in rows:
        where = row["request"] + (f" row {row['row']}" if row.get("row") is not None else "")
        how = ("label flipped" if row.get("labelLike") else
               f"|diff| {_fig(row.get('maxAbs'), '', '{:.4g}')}, relative {_fig(row.get('maxRel'), '', '{:.2%}')}, "
               f"{_fig(row.get('score'), 'x', '{:.3g}')} the tolerance")
        values = (f'<td class="pair"><pre>{_shown(row["baseline"])}</pre></td>'
                  f'<td class="pair"><pre class="bad-text">{_shown(row["candidate"])}</pre></td></tr>')
        has_input = row.get("input") is not None
        out.append(f'<tr><td class="l" rowspan="{3 if has_input else 2}"><b>{_e(where)}</b><br>'
                   f'<span class="muted">{_e(row["kind"])}</span><br>{_e(how)}</td>')
        if has_input:  # the input row once, across both sides, above their answers
            out.append(f'<td colspan="2" class="l"><span class="muted">input</span><pre>{_shown(row["input"])}</pre></td></tr><tr>')
        out.append(values)
        out.append(f'<tr><td colspan="2" class="l">{_curls(row.get("curl"))}</td></tr>')
    return ('<table><tr><th class="l">request</th><th class="l">baseline</th><th class="l">candidate</th></tr>'
            + "".join(out) + "</table>")


def _answers(data: dict[str, Any]) -> str:
    answers = data["answers"]
    by_kind = ", ".join(f"{n} {kind}" for kind, n in data["requests"]["byKind"].items()) or "none"
    lines = [f"<p>{data['requests']['total']} requests to both ({_e(by_kind)}): {answers.get('rows', 0)} numeric answer rows, "
             f"{answers.get('mismatchedRows', 0)} outside the tolerance ({_fig(answers.get('mismatchShare'), '', '{:.1%}')}); "
             f"{answers.get('labelRows', 0)} label rows, {answers.get('flippedLabels', 0)} flipped.</p>"]
    lines += [f'<p class="bad-text">{_e(problem)}</p>' for problem in answers.get("problems", [])]
    lines.append(_status_mismatches(answers.get("statusMismatches", [])))
    lines.append(f"<h3>Answers that differ most ({len(answers.get('worstRows', []))})</h3>")
    lines.append(_worst_rows(answers.get("worstRows", [])))
    histogram = answers.get("scoreHistogram")
    if histogram and any(band["rows"] for band in histogram):
        lines.append(f'<img alt="answer difference distribution" src="{charts.differences_chart(histogram)}">')
    return "\n".join(lines)


def _contract(contract: dict[str, Any]) -> str:
    parts = []
    for title, key, css in (("Breaking", "breaking", "bad-text"), ("Additions", "additions", ""), ("Notes", "notes", "muted")):
        items = contract.get(key) or []
        if items:
            parts.append(f"<h3>{title} ({len(items)})</h3><ul>" +
                         "".join(f'<li class="{css}"><code>{_e(item)}</code></li>' for item in items) + "</ul>")
    return "\n".join(parts) or "<p>The two served Swagger documents describe the same API.</p>"


_FIGURES = (("p50 latency", "p50_ms", " ms"), ("p95 latency", "p95_ms", " ms"), ("throughput", "qps", " req/s"),
            ("error rate", "error_rate", ""), ("requests served", "requests", ""), ("peak memory", "peak_memory_mb", " MB"),
            ("CPU per request", "cpu_ms_per_request", " ms"), ("image size", "image_size_mb", " MB"),
            ("cold start (deploy to healthy)", "cold_start_s", " s"))


def _speed(data: dict[str, Any]) -> str:
    speed = data["speed"]
    if speed.get("skipped"):
        return f"<p>Not measured: {_e(speed['skipped'])}.</p>"
    b, c = speed["baseline"], speed["candidate"]
    rows = "".join(
        f"<tr><td>{label}</td><td>{_fig(b.get(key), unit, '{:.2%}' if key == 'error_rate' else '{:g}' if key == 'requests' else '{:.1f}')}</td>"
        f"<td>{_fig(c.get(key), unit, '{:.2%}' if key == 'error_rate' else '{:g}' if key == 'requests' else '{:.1f}')}</td>"
        f"<td>{_ratio(b.get(key), c.get(key))}</td></tr>"
        for label, key, unit in _FIGURES)
    judged = "".join(
        f"<tr><td>{_e(name.replace('_', ' '))}</td><td>{_badge(j['verdict'])}</td>"
        f"<td>{_fig(j.get('median'), '', '{:.3g}')}</td><td>{_fig(j.get('spread'), '', '{:.3g}')}</td><td>{j.get('rounds', 0)}</td></tr>"
        for name, j in (speed.get("judgements") or {}).items())
    problems = "".join(f'<li class="bad-text">{_e(line)}</li>' for line in speed.get("problems", []))
    rounds = speed.get("rounds") or []
    chart = f'<img alt="latency and throughput per alternating round" src="{charts.rounds_chart(rounds, (data.get("settings") or {}).get("speed"))}">' if rounds else ""
    t0 = min((_number(r["start"]) or 0.0 for r in rounds), default=0.0)
    round_rows = "".join(
        f"<tr><td>{i}</td><td>{charts.ROLES.get(r['target'], r['target'])}</td><td>{_fig(_number(r['start']) - t0, ' s')}</td>"
        f"<td>{r['total']}</td><td>{_fig(r['qps'])}</td><td>{_fig(r.get('latencyP50Ms'))}</td><td>{_fig(r['latencyP95Ms'])}</td><td>{_fig(r['latencyP99Ms'])}</td>"
        f"<td>{_fig(r['errorRate'], '', '{:.1%}')}</td></tr>"
        for i, r in enumerate(rounds, 1))
    return f"""<p>Both loaded at concurrency {_e(speed.get('concurrency'))} in alternating rounds of {_fig(speed.get('roundSeconds'), ' s', '{:g}')}:
a burst of other work falls on both alike. A regression fails only when its median over the round pairs exceeds the spread the
baseline's rounds show (the noise band); within it the verdict is <i>inconclusive</i> (a warning).</p>
{f'<ul>{problems}</ul>' if problems else ''}
<table><tr><th></th><th>baseline</th><th>candidate</th><th>candidate / baseline</th></tr>{rows}</table>
<h3>Judged over the round pairs</h3>
<table><tr><th>judgement</th><th>verdict</th><th>median excess over the allowed</th><th>noise (rounds' spread)</th><th>round pairs</th></tr>{judged}</table>
<p class="muted">Latency excess in ms, throughput excess as a share of the baseline's; a positive median past the noise fails.</p>
{chart}
<details><summary>every round ({len(rounds)})</summary>
<table><tr><th>round</th><th>side</th><th>start</th><th>requests</th><th>req/s</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>errors</th></tr>{round_rows}</table>
</details>"""


def _sensitivity(sensitivity: dict[str, Any]) -> str:
    if not sensitivity:
        return "<p>Not judged.</p>"
    constant = (f'<p class="bad-text">The candidate answered <code>{_shown(sensitivity.get("constantAnswer"))}</code> '
                f"to every distinct request.</p>" if sensitivity.get("constant") else "")
    return (f"<p>{_e(sensitivity.get('message', ''))}</p>{constant}"
            f"<table><tr><th></th><th>distinct requests</th><th>distinct baseline answers</th><th>distinct candidate answers</th></tr>"
            f"<tr><td>answered 200 by both</td><td>{_e(sensitivity.get('inputs'))}</td><td>{_e(sensitivity.get('baselineDistinct'))}</td>"
            f"<td>{_e(sensitivity.get('candidateDistinct'))}</td></tr></table>")


def render_html(data: dict[str, Any]) -> str:
    """The comparison as one self-contained HTML page (no script; see the module doc)."""
    passed = data["passed"]
    speed = data["speed"]
    b, c = speed.get("baseline") or {}, speed.get("candidate") or {}
    failed = [g["name"] for g in data["gates"] if g["status"] == "fail"]
    verdict = ('<span class="badge ok">PASSED</span>' if passed
               else f'<span class="badge bad">FAILED: {_e(", ".join(failed))}</span>')
    notes = "".join(f"<li>{_e(note)}</li>" for note in data.get("notes", []))
    title = f"compare: {data['candidate']['spec']} against {data['baseline']['spec']}"
    speed_cards = "" if speed.get("skipped") else (
        card(f"{_fig(b.get('p95_ms'))} → {_fig(c.get('p95_ms'))} ms", "p95 latency, baseline → candidate")
        + card(f"{_fig(b.get('qps'))} → {_fig(c.get('qps'))}", "req/s, baseline → candidate"))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">
<title>{_e(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{PAGE_CSS}{_EXTRA_CSS}</style></head>
<body>
<h1>Candidate <code>{_e(data['candidate']['spec'])}</code> against baseline <code>{_e(data['baseline']['spec'])}</code></h1>
<p class="sub">{verdict} · {_e(data['target'])} target · both under cpu {_fig(data['limits'].get('cpu'), '', '{:g}')},
memory {_fig(data['limits'].get('memory_gb'), ' GB', '{:g}')}</p>
<table><tr><td class="l">baseline</td><td class="l">{_side(data['baseline'])}</td></tr>
<tr><td class="l">candidate</td><td class="l">{_side(data['candidate'])}</td></tr></table>
<div class="cards">
{card(str(data['requests']['total']), "requests sent to both")}
{card(f"{data['answers'].get('mismatchedRows', 0)} / {data['answers'].get('rows', 0)}", "answer rows outside the tolerance")}
{card(str(len(data['contract'].get('breaking', []))), "breaking contract changes")}
{speed_cards}
</div>
<h2>Gates</h2>
{_gates(data)}
{f'<h2>Notes</h2><ul class="warnings">{notes}</ul>' if notes else ''}
<h2 id="answers">Answers</h2>
{_answers(data)}
<h2 id="contract">Contract</h2>
{_contract(data['contract'])}
<h2 id="speed">Speed and size</h2>
{_speed(data)}
<h2 id="sensitivity">Input sensitivity</h2>
{_sensitivity(data.get('sensitivity') or {})}
<p class="muted">Rendered from compare.json ({_e(data.get('schema', ''))}); the thresholds are the <code>compare:</code> settings of mldeploy.yaml (docs/compare.md).</p>
</body></html>
"""


def write_html(data: dict[str, Any], out_dir: Path) -> Path:
    """Write `compare.html` into `out_dir` (created) atomically; returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "compare.html"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(render_html(data), encoding="utf-8")
    os.replace(tmp, path)
    return path
