"""The compare report's charts, read from `compare.json`'s dict, as inline PNGs (the profile's chart helpers)."""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

from pytest_mldeploy.checks.profiling import noise
from pytest_mldeploy.checks.profiling.charts import data_uri, new_figure

#: The two sides' colours in every chart (matplotlib's first two).
COLOURS = {0: "tab:blue", 1: "tab:orange"}
ROLES = {0: "baseline", 1: "candidate"}


def _number(value: Any) -> float:
    """A figure of compare.json as a float: null and the "inf"/"nan" strings become NaN or infinity."""
    if value is None:
        return math.nan
    return float(value)


def rounds_chart(rounds: Sequence[dict[str, Any]], speed_settings: Optional[dict[str, Any]] = None) -> str:
    """p95 and p50 latency (left) and throughput (right) of each alternating round, baseline and candidate in turn,
    with the baseline rounds' interquartile band (the noise) and the latency the candidate is allowed."""
    fig = new_figure()
    ax = fig.add_subplot()
    right = ax.twinx()
    t0 = min((_number(r["start"]) for r in rounds), default=0.0)
    for target in (0, 1):
        mine = [r for r in rounds if r["target"] == target]
        xs = [(_number(r["start"]) + _number(r["end"])) / 2 - t0 for r in mine]
        ax.plot(xs, [_number(r["latencyP95Ms"]) for r in mine], "o-", color=COLOURS[target], label=f"{ROLES[target]} p95")
        if all("latencyP50Ms" in r for r in mine):
            ax.plot(xs, [_number(r["latencyP50Ms"]) for r in mine], "x:", color=COLOURS[target], label=f"{ROLES[target]} p50")
        right.plot(xs, [_number(r["qps"]) for r in mine], "s--", color=COLOURS[target], alpha=0.45,
                   label=f"{ROLES[target]} req/s")
    base = [_number(r["latencyP95Ms"]) for r in rounds if r["target"] == 0]
    finite = [v for v in base if math.isfinite(v)]
    if finite:
        middle, spread = noise.median(finite), noise.iqr(finite)
        ax.axhspan(middle - spread / 2, middle + spread / 2, color=COLOURS[0], alpha=0.12, label="baseline noise (IQR)")
        if speed_settings:
            allowed = speed_settings["p95_ratio"] * middle + speed_settings["p95_slack_ms"]
            ax.axhline(allowed, color="tab:red", linestyle=":", label=f"allowed p95 ({allowed:.1f} ms)")
    ax.set_xlabel("seconds into the load")
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    right.set_ylabel("throughput (req/s)")
    right.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    lines, labels = ax.get_legend_handles_labels()
    more, more_labels = right.get_legend_handles_labels()
    ax.legend(lines + more, labels + more_labels, loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8, ncol=3)
    ax.set_title("Alternating rounds: latency and throughput per round")
    return data_uri(fig)


def band_label(up_to: Any) -> str:
    """A score band's label: `identical`, `≤ 0.1x`, ..., `unbounded` (a flipped label, another shape, NaN)."""
    edge = _number(up_to)
    if edge == 0:
        return "identical"
    if math.isinf(edge):
        return "unbounded"
    return f"≤ {edge:g}x"


def differences_chart(histogram: Sequence[dict[str, Any]]) -> str:
    """How many answer rows fall in each band of difference (in multiples of the tolerance); bands past 1 differ."""
    fig = new_figure()
    ax = fig.add_subplot()
    labels = [band_label(band["upTo"]) for band in histogram]
    counts = [band["rows"] for band in histogram]
    colours = ["tab:green" if _number(band["upTo"]) <= 1 else "tab:red" for band in histogram]
    bars = ax.bar(range(len(counts)), counts, color=colours)
    ax.bar_label(bars, [str(n) if n else "" for n in counts], fontsize=8)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    within = sum(1 for band in histogram if _number(band["upTo"]) <= 1)
    ax.axvline(within - 0.5, color="black", linestyle=":", label="tolerance (atol + rtol x |baseline|)")
    ax.set_xlabel("largest difference in a row, in multiples of the tolerance")
    ax.set_ylabel("answer rows")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("How far the candidate's answers are from the baseline's")
    return data_uri(fig)
