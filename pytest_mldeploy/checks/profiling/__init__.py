"""The load profile: Locust load, resource sampling, CPU/memory recommendation, closed-loop verification, gates, reports.

`check_profile(ctx)` is the `profile` check of `pytest --mldeploy`; `profile_deployment(...)`
is what `mldeploy profile DEPLOYMENT` runs. See docs/profiling.md for the method.
"""
from __future__ import annotations

from pytest_mldeploy.checks.profiling.check import check_profile
from pytest_mldeploy.checks.profiling.profiler import ProfileSettings, profile_deployment, profile_service
from pytest_mldeploy.checks.profiling.result import ProfileResult

__all__ = ["ProfileResult", "ProfileSettings", "check_profile", "profile_deployment", "profile_service"]
