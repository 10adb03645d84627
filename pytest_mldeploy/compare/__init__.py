"""`mldeploy compare`: the candidate against the deployment it replaces (docs/compare.md).

`run_compare(BASELINE, CANDIDATE, ...)` deploys both side by side and judges the candidate's
answers, contract, speed and input sensitivity; `CompareResult.to_dict()` is `compare.json`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["run_compare", "CompareResult", "render_markdown", "format_summary"]

if TYPE_CHECKING:
    from pytest_mldeploy.compare.markdown import render_markdown
    from pytest_mldeploy.compare.result import CompareResult
    from pytest_mldeploy.compare.run import run_compare
    from pytest_mldeploy.compare.summary import format_summary

_WHERE = {"run_compare": "run", "CompareResult": "result", "render_markdown": "markdown", "format_summary": "summary"}


def __getattr__(name: str) -> Any:
    """Import on first use: the CLI's other commands and the pytest plugin should not pay for this package."""
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(f"pytest_mldeploy.compare.{_WHERE[name]}"), name)
    raise AttributeError(name)
