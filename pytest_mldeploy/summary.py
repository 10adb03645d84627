"""The table `pytest --mldeploy` ends with: one row per deployment."""
from __future__ import annotations

import json
from typing import Any, Iterable


def _profile_cell(figures: dict[str, Any]) -> str:
    parts = []
    if "requestedCpu" in figures:
        parts.append(f"cpu {figures['requestedCpu']}")
    if "requestedMemoryInGb" in figures:
        parts.append(f"mem {figures['requestedMemoryInGb']} GB")
    if "measuredQueriesPerSecond" in figures:
        parts.append(f"{float(figures['measuredQueriesPerSecond']):.0f} req/s")
    if "latencyPercentile95InMs" in figures:
        parts.append(f"p95 {float(figures['latencyPercentile95InMs']):.1f} ms")
    if "verdict" in figures:
        parts.append(str(figures["verdict"]))
    return ", ".join(parts) or "-"


def summary_lines(deployments: dict[str, dict[str, Any]]) -> Iterable[str]:
    """Rows of deployment, target, state, checks passed, image and profile figures, aligned."""
    header = ("deployment", "target", "state", "checks", "image", "profile")
    rows = [header]
    for name, entry in sorted(deployments.items()):
        rows.append((name, entry.get("target", "-"), entry.get("state", "-"), checks_cell(entry),
                     entry.get("image") or "-", _profile_cell(entry.get("figures", {}))))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    for row in rows:
        yield "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()


def checks_cell(entry: dict[str, Any]) -> str:
    """`3/5 passed (failed: robustness), 1 skipped, 2 warnings (robustness)`: the same counts pytest gives."""
    checks = entry.get("checks", {})
    passed = sum(outcome == "passed" for outcome in checks.values())
    failed = [c for c, outcome in checks.items() if outcome == "failed"]
    skipped = sum(outcome == "skipped" for outcome in checks.values())
    warned = {c: n for c, n in entry.get("warnings", {}).items() if n}
    cell = f"{passed}/{len(checks)} passed" + (f" (failed: {', '.join(failed)})" if failed else "")
    if skipped:
        cell += f", {skipped} skipped"
    if warned:
        total = sum(warned.values())
        cell += f", {total} warning{'s' if total != 1 else ''} ({', '.join(warned)})"
    return cell


def record_outcome(deployments: dict[str, dict[str, Any]], recorded: str, outcome: str) -> None:
    """Add one check item's recorded property (JSON) and pytest's verdict for it to `deployments`.

    pytest's verdict, not the check's, so the table's counts agree with pytest's own.
    """
    data = json.loads(recorded)
    entry = deployments.setdefault(data["deployment"], {})
    entry.setdefault("checks", {})[data["check"]] = outcome
    entry.setdefault("warnings", {})[data["check"]] = len(data.get("warnings", ()))
    entry.update({k: data[k] for k in ("state", "target", "image") if data[k]})
    if data["figures"]:
        entry.setdefault("figures", {}).update(data["figures"])
