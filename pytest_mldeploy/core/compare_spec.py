"""The `compare:` section of `mldeploy.yaml`: how `mldeploy compare` judges a candidate against its baseline.

Every threshold has a default, so a project without the section gets the gate as documented
(docs/compare.md). Unknown keys are errors, as everywhere in the config.

```yaml
compare:
  answers: {atol: 1.0e-6, rtol: 1.0e-5, max_mismatch_share: 0, max_label_flip_share: 0, examples: 20, seed: 0}
  contract: {fail_on_breaking: true}
  speed: {enabled: true, concurrency: 2, rounds: 10, round_s: 1.5, p95_ratio: 1.10, p95_slack_ms: 2.0, throughput_ratio: 0.90}
  sensitivity: {fail_on_constant: true}
```
"""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class AnswersSpec(_Section):
    """When two answers to the same request count as the same, and how many may differ."""

    #: Numbers a, b agree when |a - b| <= atol + rtol * |b| (elementwise, NaN equals NaN).
    atol: float = Field(1e-6, ge=0)
    rtol: float = Field(1e-5, ge=0)
    #: Share of answer rows allowed outside the tolerance (0: none may).
    max_mismatch_share: float = Field(0.0, ge=0, le=1)
    #: Share of label-like answers (strings, integers, booleans) allowed to flip.
    max_label_flip_share: float = Field(0.0, ge=0, le=1)
    #: Schema-valid requests drawn by Hypothesis (seeded, the same for both sides).
    examples: int = Field(20, ge=0)
    seed: int = 0
    #: How many of the most different rows the report shows.
    worst_rows: int = Field(5, ge=1)


class ContractSpec(_Section):
    """The served Swagger documents compared as an API."""

    fail_on_breaking: bool = True


class SpeedSpec(_Section):
    """Latency and throughput at one concurrency, in rounds alternating between the two services."""

    enabled: bool = True
    concurrency: int = Field(2, ge=1)
    #: Rounds in all (half for each side); the pairs' spread is the noise a regression must exceed.
    rounds: int = Field(10, ge=2)
    round_s: float = Field(1.5, gt=0)
    warmup_s: float = Field(1.0, ge=0)
    #: The candidate's p95 (and p50) may be at most p95_ratio x the baseline's + p95_slack_ms.
    p95_ratio: float = Field(1.10, ge=1)
    p95_slack_ms: float = Field(2.0, ge=0)
    #: The candidate's throughput must be at least this share of the baseline's.
    throughput_ratio: float = Field(0.90, gt=0, le=1)
    #: Optional limits on single measurements (reported always, gated only when set).
    max_memory_ratio: Optional[float] = Field(None, gt=0)
    max_cpu_per_request_ratio: Optional[float] = Field(None, gt=0)
    max_image_size_ratio: Optional[float] = Field(None, gt=0)
    max_cold_start_ratio: Optional[float] = Field(None, gt=0)


class SensitivitySpec(_Section):
    """A candidate whose answer does not depend on its input, while the baseline's does."""

    fail_on_constant: bool = True


class CompareSpec(_Section):
    """All of `compare:`."""

    answers: AnswersSpec = Field(default_factory=AnswersSpec)
    contract: ContractSpec = Field(default_factory=ContractSpec)
    speed: SpeedSpec = Field(default_factory=SpeedSpec)
    sensitivity: SensitivitySpec = Field(default_factory=SensitivitySpec)
