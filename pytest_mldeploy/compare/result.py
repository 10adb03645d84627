"""The outcome of one comparison, and `compare.json`: the one place its shape is defined.

`CompareResult.to_dict()` is what `compare.json` holds and what every renderer (the terminal
summary, `markdown.render_markdown`, the HTML report) reads. The shape, version `SCHEMA`:

```
{
  "schema": "mldeploy-compare/1",
  "passed": bool,                     # no gate failed
  "target": "process" | "docker",
  "limits": {"cpu": float, "memory_gb": float},          # both sides ran under these
  "baseline":  {"spec", "kind", "deployment", "config", "revision", "image"},
  "candidate": {... the same ...},
  "requests": {"total": int, "byKind": {"sample": int, "example": int, "generated": int}},
  "gates": [{"name": "answers" | "contract" | "speed" | "sensitivity",
             "status": "pass" | "fail" | "warn" | "skip", "message": str}],
  "answers": {"passed", "problems": [str], "sent", "tolerance": {"atol", "rtol"},
              "rows", "mismatchedRows", "mismatchShare", "maxMismatchShare",
              "labelRows", "flippedLabels", "flipShare", "maxLabelFlipShare",
              "statusMismatches": [{"request", "kind", "baseline", "candidate",
                                    "baselineBody", "candidateBody", "curl": {"baseline", "candidate"}}],
              "worstRows": [{"request", "kind", "row", "input", "baseline", "candidate", "labelLike",
                             "maxAbs", "maxRel", "score", "curl": {"baseline", "candidate"}}],
              "scoreHistogram": [{"upTo": float | "inf", "rows": int}]},   # rows per score band (x tolerance)
  "contract": {"passed", "breaking": [str], "additions": [str], "notes": [str]},
  "speed": {"verdict": "pass" | "fail" | "inconclusive" | "skip", "skipped": str | null,
            "problems": [str], "concurrency", "roundSeconds",
            "baseline":  {"p50_ms", "p95_ms", "qps", "error_rate", "requests", "peak_memory_mb",
                          "cpu_ms_per_request", "image_size_mb", "cold_start_s"},
            "candidate": {... the same ...},
            "judgements": {"latency_p50" | "latency_p95" | "throughput" | "errors": {"verdict", "median", "spread", "rounds", "tolerance"}},
            "rounds": [{"index", "target", "start", "end", "total", "qps", "latencyP50Ms", "latencyP95Ms", "latencyP99Ms", "errorRate"}]},
  "sensitivity": {"passed", "constant", "inputs", "baselineDistinct", "candidateDistinct",
                  "constantAnswer", "message"},
  "notes": [str],
  "settings": {"answers": {...}, "contract": {...}, "speed": {...}, "sensitivity": {...}}   # the compare: section judged by
}
```
Numbers JSON cannot hold (an unbounded difference) are written as the strings "inf" / "nan";
unmeasured figures are null.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from pytest_mldeploy.compare.answers import AnswersResult
from pytest_mldeploy.compare.contract_diff import ContractDiff
from pytest_mldeploy.compare.sensitivity import Sensitivity
from pytest_mldeploy.compare.sides import Side
from pytest_mldeploy.compare.speed import SpeedResult

SCHEMA = "mldeploy-compare/1"
PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float written as "inf", "-inf" or "nan" (JSON has none of them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


@dataclass(frozen=True)
class Gate:
    """One gate's verdict and the line that explains it."""

    name: str
    status: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "message": self.message}


@dataclass
class CompareResult:
    """Everything one comparison found."""

    baseline: Side
    candidate: Side
    target: str
    limits: dict[str, Any]
    request_counts: dict[str, int]
    answers: AnswersResult
    contract: ContractDiff
    speed: SpeedResult
    sensitivity: Sensitivity
    fail_on_breaking: bool = True
    notes: list[str] = field(default_factory=list)
    json_path: Optional[Path] = None
    html_path: Optional[Path] = None

    def gates(self) -> list[Gate]:
        answers = self.answers.problems()
        contract = (f"{len(self.contract.breaking)} breaking change(s): {self.contract.breaking[0]}" if self.contract.breaking
                    else f"no breaking change ({len(self.contract.additions)} addition(s))")
        contract_status = PASS if self.contract.passed else (FAIL if self.fail_on_breaking else WARN)
        speed_status = {"pass": PASS, "fail": FAIL, "inconclusive": WARN, "skip": SKIP}[self.speed.verdict]
        speed_lines = [line for _, line in self.speed.problems()]
        speed = (self.speed.skipped or "; ".join(speed_lines) or
                 f"p95 {self.speed.candidate.p95_ms:.1f} vs {self.speed.baseline.p95_ms:.1f} ms, "
                 f"{self.speed.candidate.qps:.1f} vs {self.speed.baseline.qps:.1f} req/s at concurrency {self.speed.spec.concurrency}")
        sensitivity_status = PASS if not self.sensitivity.constant else (FAIL if self.sensitivity.fail_on_constant else WARN)
        return [
            Gate("answers", FAIL if answers else PASS, "; ".join(answers) or
                 f"{self.answers.sent} requests, every answer within tolerance"),
            Gate("contract", contract_status, contract),
            Gate("speed", speed_status, speed),
            Gate("sensitivity", sensitivity_status, self.sensitivity.message()),
        ]

    @property
    def passed(self) -> bool:
        return all(g.status != FAIL for g in self.gates())

    def to_dict(self) -> dict[str, Any]:
        return json_safe({
            "schema": SCHEMA,
            "passed": self.passed,
            "target": self.target,
            "limits": self.limits,
            "baseline": self.baseline.to_dict(),
            "candidate": self.candidate.to_dict(),
            "requests": {"total": sum(self.request_counts.values()), "byKind": self.request_counts},
            "gates": [g.to_dict() for g in self.gates()],
            "answers": self.answers.to_dict(),
            "contract": self.contract.to_dict(),
            "speed": self.speed.to_dict(),
            "sensitivity": self.sensitivity.to_dict(),
            "notes": self.notes,
            "settings": {"answers": self.answers.spec.model_dump(), "contract": {"fail_on_breaking": self.fail_on_breaking},
                         "speed": self.speed.spec.model_dump(), "sensitivity": {"fail_on_constant": self.sensitivity.fail_on_constant}},
        })

    def write_json(self, out: Path) -> Path:
        """Write `compare.json` into the folder `out`; returns its path."""
        out.mkdir(parents=True, exist_ok=True)
        path = out / "compare.json"
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str, allow_nan=False) + "\n", encoding="utf-8")
        self.json_path = path
        return path
