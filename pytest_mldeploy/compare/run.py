"""`run_compare`: deploy both sides side by side, send them the same requests, judge the candidate.

Both services run on the same target under the same limits (the candidate's `resources`: the
comparison is about the code and the model, not about what each asks for). Their contracts are
read, the same request set goes to both (`requests.py`), then the answers, the contract, the
input sensitivity and the speed are judged; both services are deleted afterwards, whatever happens.
With `out`, `compare.json` and `compare.html` (`html_report.py`) are written there.
"""
from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Optional

from pytest_mldeploy.checks.published_contract import read_contract
from pytest_mldeploy.client import ScoringClient
from pytest_mldeploy.compare.answers import compare_answers, send
from pytest_mldeploy.compare.contract_diff import diff_contracts
from pytest_mldeploy.compare.html_report import write_html
from pytest_mldeploy.compare.requests import (build_request_set, counts, derived_variants, found_request_files,
                                              load_requests, read_found)
from pytest_mldeploy.compare.result import CompareResult
from pytest_mldeploy.compare.sensitivity import judge_sensitivity
from pytest_mldeploy.compare.sides import Side, resolve_sides
from pytest_mldeploy.compare.speed import image_size_mb, measure_speed
from pytest_mldeploy.core.targets import Target, get_target
from pytest_mldeploy.errors import ConfigError, ServiceError

Progress = Callable[[str], None]

#: Seeded variants of the sample and example requests the sensitivity gate sends (never the answers gate).
SENSITIVITY_VARIANTS = 8


def start_side(side: Side, target: Target, resources: Any) -> tuple[Any, float]:
    """Deploy one side under `resources`; returns the Healthy service and its cold start (start to healthy, s)."""
    options: dict[str, Any] = {"image": side.image} if side.image else {}
    service = target.deploy(side.deployment, side.project, resources=resources, wait=False,
                            name=f"{side.role}-{side.deployment.name}", **options)
    started = time.monotonic()
    try:
        service.wait_until_healthy(side.deployment.health_timeout_s)
    except BaseException:
        service.delete()
        raise
    return service, time.monotonic() - started


def _contract(client: ScoringClient, side: Side, notes: list[str]) -> Any:
    try:
        return read_contract(client)
    except Exception as exc:  # noqa: BLE001 - a side without a readable swagger is compared without a contract
        notes.append(f"the {side.role} serves no readable swagger document ({type(exc).__name__}: {exc})")
        return None


def _found_requests(base: Side, cand: Side, notes: list[str], progress: Progress) -> list[Any]:
    """Azure's request files beside the code of the sides that name no `profile.requests`, announced once."""
    found: list[Any] = []
    for side in (cand, base):
        found += read_found(found_request_files(side.deployment, side.project.root), side.project.root)
    if found:
        labels = ", ".join(dict.fromkeys(r.label for r in found))
        notes.append(f"sample requests found beside the deployment's code: {labels} (no --requests or profile.requests named)")
        progress(f"no --requests or profile.requests: sending {labels}, found beside the deployment's code")
    return found


def run_compare(baseline: str, candidate: str, *, config: Optional[Path] = None, target: str = "process",
                out: Optional[Path] = None, requests: Optional[Path] = None,
                progress: Progress = lambda _m: None) -> CompareResult:
    """Compare CANDIDATE against BASELINE (each a spec `sides.py` resolves) and write `compare.json` to `out`.

    `requests` (a file or folder, read as `profile.requests` is) adds requests to the ones the
    deployments name: v2 deployments have no `profile.requests`.
    """
    if requests is not None and not Path(requests).exists():
        raise ConfigError(f"--requests {requests}: does not exist; name a file of request bodies, a .json request or a folder")
    with ExitStack() as stack:
        base, cand = resolve_sides(baseline, candidate, config=config, stack=stack, progress=progress)
        spec = cand.project.compare
        chosen = get_target(target, notice=progress)
        for side in (base, cand):
            if side.image and chosen.name != "docker":
                raise ConfigError(f"{side.role} {side.spec!r} is an image: compare it on the Docker target (--target docker)")
        resources = cand.deployment.resources
        services: list[Any] = []
        stack.callback(lambda: [s.delete() for s in services])
        cold: list[float] = []
        for side in (base, cand):
            progress(f"deploying {side.describe()} on the {chosen.name} target (cpu {resources.cpu:g}, memory {resources.memory_gb:g} GB)")
            try:
                service, seconds = start_side(side, chosen, resources)
            except ServiceError as exc:
                raise ServiceError(f"{side.describe()} did not start: {exc}") from exc
            services.append(service)
            cold.append(seconds)
        clients = [ScoringClient.from_service(s) for s in services]
        notes: list[str] = []
        contracts = [_contract(client, side, notes) for client, side in zip(clients, (base, cand))]
        found = [] if requests is not None else _found_requests(base, cand, notes, progress)
        request_set = build_request_set(base.deployment, cand.deployment, contracts[0], contracts[1],
                                        examples=spec.answers.examples, seed=spec.answers.seed, extra=requests, found=found)
        if request_set and not any(r.kind == "sample" for r in request_set):
            notes.append("no sample requests: pass --requests FILE (or set profile.requests) to compare answers on real traffic")
        progress(f"sending the same {len(request_set)} requests to both")
        answers = compare_answers(request_set, clients[0], clients[1], spec.answers)
        contract = diff_contracts(*(c.document if c is not None else None for c in contracts))
        variants = derived_variants(request_set, count=SENSITIVITY_VARIANTS, seed=spec.answers.seed)
        sensitivity = judge_sensitivity(answers.pairs + [(r, send(clients[0], r), send(clients[1], r)) for r in variants],
                                        spec.sensitivity.fail_on_constant)
        if spec.speed.enabled:
            progress(f"loading both at concurrency {spec.speed.concurrency} in {spec.speed.rounds} alternating "
                     f"rounds of {spec.speed.round_s:g} s")
        speed = measure_speed(services[0], services[1], load_requests(request_set), spec.speed,
                              workdir=(out / "load") if out else None)
        for figures, service, seconds in ((speed.baseline, services[0], cold[0]), (speed.candidate, services[1], cold[1])):
            figures.cold_start_s = seconds
            figures.image_size_mb = image_size_mb(service)
        for client in clients:
            client.close()
        result = CompareResult(base, cand, chosen.name, {"cpu": resources.cpu, "memory_gb": resources.memory_gb},
                               counts(request_set), answers, contract, speed, sensitivity,
                               fail_on_breaking=spec.contract.fail_on_breaking, notes=notes)
        if out is not None:
            result.write_json(Path(out))
            result.html_path = write_html(result.to_dict(), Path(out))
        return result
