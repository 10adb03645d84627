"""The sweep rule, the owner labels, container names and target choice (no engine needed)."""
from __future__ import annotations

import os
import socket

import pytest

from pytest_mldeploy.core.targets import cleanup, get_target
from pytest_mldeploy.core.targets.cleanup import SweepDecision, owner_labels, sweep_decision
from pytest_mldeploy.core.config import Resources
from pytest_mldeploy.core.targets.docker import container_name_for
from pytest_mldeploy.errors import ServiceError

HOST = "ci-runner-7"
STARTED = 1_700_000_000.25


def labels(**overrides: str) -> dict[str, str]:
    base = {
        "mldeploy.managed": "true",
        "mldeploy.run-id": "abcd1234",
        "mldeploy.host": HOST,
        "mldeploy.pid": "4242",
        "mldeploy.pid-start": f"{STARTED:.3f}",
        "mldeploy.deployment": "diabetes",
        "mldeploy.keep": "false",
    }
    base.update(overrides)
    return base


def decide(lbls: dict[str, str], processes: dict[int, float]) -> SweepDecision:
    return sweep_decision(lbls, host=HOST, start_time_of=processes.get)


def test_owner_gone_is_swept():
    decision = decide(labels(), {})
    assert decision.remove and "4242 is gone" in decision.why


def test_live_owner_is_left_alone():
    assert not decide(labels(), {4242: STARTED + 0.004}).remove


def test_reused_pid_is_swept():
    decision = decide(labels(), {4242: STARTED + 3600})
    assert decision.remove and "another process" in decision.why


def test_other_host_is_left_alone_even_when_the_pid_is_free_here():
    assert not decide(labels(**{"mldeploy.host": "laptop"}), {}).remove


def test_kept_container_is_never_swept():
    assert not decide(labels(**{"mldeploy.keep": "true"}), {}).remove


def test_unmanaged_or_unreadable_owner_is_left_alone():
    assert not decide(labels(**{"mldeploy.managed": "false"}), {}).remove
    assert not decide(labels(**{"mldeploy.pid": ""}), {}).remove
    # Alive but no start time recorded: cannot prove reuse, so it stays.
    assert not decide(labels(**{"mldeploy.pid-start": ""}), {4242: STARTED + 99}).remove


def test_owner_labels_name_this_process_and_pass_the_rule():
    own = owner_labels("diabetes")
    assert own["mldeploy.pid"] == str(os.getpid())
    assert own["mldeploy.host"] == socket.gethostname()
    assert own["mldeploy.run-id"] == cleanup.RUN_ID
    assert own["mldeploy.keep"] == "false"
    assert owner_labels("diabetes", keep=True)["mldeploy.keep"] == "true"
    # This process is alive with the recorded start time: never swept.
    assert not sweep_decision(own, host=socket.gethostname()).remove


def test_container_names_are_docker_safe_and_unique_per_n():
    assert container_name_for("diabetes", "abcd1234", 1) == "mldeploy-diabetes-abcd1234-1"
    assert container_name_for("my model/v2", "r", 3) == "mldeploy-my-model-v2-r-3"


def test_limits_convert_to_docker_units_and_back():
    limits = Resources(cpu=0.5, memory_gb=0.125)
    assert (limits.nano_cpus, limits.memory_bytes) == (500_000_000, 128 * 1024**2)
    assert Resources.from_docker({"NanoCpus": 500_000_000, "Memory": 128 * 1024**2}) == limits
    assert Resources.from_docker({"NanoCpus": 0, "Memory": 128 * 1024**2}) is None
    assert Resources.from_docker({}) is None


def test_get_target_process_and_unknown():
    assert get_target("process", notice=None).name == "process"
    with pytest.raises(ServiceError, match="unknown"):
        get_target("kubernetes", notice=None)


def test_get_target_auto_says_which_and_why():
    said: list[str] = []
    target = get_target("auto", notice=said.append)
    assert target.name in ("docker", "process")
    assert len(said) == 1 and f"-> {target.name}" in said[0]
