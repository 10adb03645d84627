"""The profile's charts as PNG data URIs (matplotlib's Agg canvas: no display, no global backend).

`new_figure` and `data_uri` are shared with the compare report (`compare/charts.py`): one size, one encoding.
"""
from __future__ import annotations

import base64
import io
import math
from typing import Optional, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pytest_mldeploy.checks.profiling.sampling import Sample
from pytest_mldeploy.checks.profiling.stats import LoadStats

_WIDTH, _HEIGHT, _DPI = 8.0, 3.6, 100


def new_figure() -> Figure:
    """A figure of the reports' chart size, on no global backend."""
    return Figure(figsize=(_WIDTH, _HEIGHT))


def data_uri(fig: Figure) -> str:
    """`fig` as an inline PNG (`data:image/png;base64,...`): the reports stay one self-contained file."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _finite(values: Sequence[float]) -> list[float]:
    return [v if v is not None and not math.isnan(v) else float("nan") for v in values]


def sweep_chart(sweep: Sequence[LoadStats], chosen: int) -> str:
    """Latency p50/p95/p99 (left axis, ms) and throughput (right axis) against concurrency."""
    fig = new_figure()
    ax = fig.add_subplot()
    levels = [s.concurrency for s in sweep]
    for label, values, style in (
        ("p50", [s.latency_p50_ms for s in sweep], "o-"),
        ("p95", [s.latency_p95_ms for s in sweep], "s-"),
        ("p99", [s.latency_p99_ms for s in sweep], "^-"),
    ):
        ax.plot(levels, _finite(values), style, label=f"latency {label}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels, [str(level) for level in levels])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    right = ax.twinx()
    right.plot(levels, [s.qps for s in sweep], "D--", color="black", label="throughput")
    right.set_ylabel("throughput (req/s)")
    right.set_ylim(bottom=0)
    ax.axvline(chosen, color="green", alpha=0.4, linewidth=6, label=f"steady phase ({chosen})")
    lines, labels = ax.get_legend_handles_labels()
    more, more_labels = right.get_legend_handles_labels()
    ax.legend(lines + more, labels + more_labels, loc="upper left", fontsize=8)
    ax.set_title("Latency and throughput against concurrency")
    return data_uri(fig)


def usage_chart(
    samples: Sequence[Sample],
    attribute: str,
    *,
    title: str,
    unit: str,
    scale: float,
    current: Optional[float],
    recommended: float,
    steady: Optional[tuple[float, float]],
) -> str:
    """CPU or memory over time with the current limit and the recommendation drawn, the steady phase shaded."""
    fig = new_figure()
    ax = fig.add_subplot()
    t0 = samples[0].t if samples else 0.0
    xs = [s.t - t0 for s in samples]
    ys = [getattr(s, attribute) / scale for s in samples]
    ax.plot(xs, ys, color="tab:blue", label="used")
    if steady is not None:
        ax.axvspan(steady[0] - t0, steady[1] - t0, color="tab:green", alpha=0.12, label="steady phase")
    if current is not None:
        ax.axhline(current, color="tab:red", linestyle="--", label=f"current limit {current:g} {unit}")
    ax.axhline(recommended, color="tab:green", linestyle="-", label=f"recommended {recommended:g} {unit}")
    ax.set_xlabel("seconds")
    ax.set_ylabel(unit)
    ax.set_ylim(bottom=0, top=max([*ys, recommended, current or 0.0, 1e-6]) * 1.15)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title)
    return data_uri(fig)
