"""What each `mldeploy` command does, given its parsed arguments: one `cmd_NAME` per subcommand.

`cli.py` holds the command line's grammar (`build_parser`) and turns errors into one readable
message; these functions are thin wiring over `pytest_mldeploy.core`, `checks` and `compare`, each
returning the command's exit code.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Optional

from pytest_mldeploy.errors import ConfigError, MldeployError, ServiceError


#: How a command names a deployment, for `Project.deployment`'s message when the project has several.
_NAME_ONE = "name one on the command line"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load(args: argparse.Namespace):
    from pytest_mldeploy.core.config import load_project

    return load_project(args.config)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _stop_on_sigterm() -> None:
    """From now on SIGTERM stops this command as Ctrl-C does: `finally` blocks stop what it started."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)


def _claim(project, name: str, doing: str) -> None:
    """Make way for a new service of `name`: forget a stopped one's record, refuse when another command's runs.

    `deploy` replaces a running deployed service (it calls `kept.delete` itself); a service
    `mldeploy serve` serves belongs to that command, and `serve` never takes over a deployed one.
    """
    from pytest_mldeploy.core import kept

    record = kept.find(project, name)
    if record is None:
        return
    if not kept.is_running(record):
        kept.delete(project, name)
        return
    served = record.get("started_by") == kept.SERVE
    if served or doing == kept.SERVE:
        stop = "stop it with Ctrl-C where `mldeploy serve` runs" if served else f"`mldeploy delete {name}` first"
        raise ServiceError(f"cannot {doing} '{name}': {kept.describe(record)} is already running; {stop}")


def _deploy_options(target, log: Path) -> dict:
    """The process target writes its log at `log` itself (Docker keeps a container's log)."""
    return {"log_path": log} if target.name == "process" else {}


def _stop_serving(service, stream, log: Path) -> None:
    """Stop the service, then the log stream once it has copied the last line; a container's log is saved whole."""
    from pytest_mldeploy.core import logstream

    if service.target == "docker":
        logstream.stop_container(service.container_id)
    else:
        service.delete()
    if stream is not None:
        stream.stop()
    if service.target == "docker":
        logstream.save_container_log(service.container_id, log)
        service.delete()


def cmd_serve(args: argparse.Namespace) -> int:
    from pytest_mldeploy.core import kept, logstream
    from pytest_mldeploy.core.service import ServiceFailed
    from pytest_mldeploy.core.targets import get_target
    from pytest_mldeploy.core.targets.common import serving_port

    project = _load(args)
    deployment = project.deployment(args.deployment, _NAME_ONE)
    name = deployment.name
    _claim(project, name, kept.SERVE)
    _stop_on_sigterm()  # a stop while it starts must not leave the service behind
    target = get_target(args.target, notice=_say)
    log = kept.fresh_log(project, name)
    try:
        service = target.deploy(deployment, project, port=serving_port(deployment, args.port), **_deploy_options(target, log))
    except ServiceFailed as exc:
        if target.name != "process":  # the container is gone: keep what it printed
            log.write_text(exc.log_tail)
        _say(f"mldeploy: the service's log: {log}")
        raise
    # Stop it ourselves from here on (the targets' SIGTERM cleanup would remove it before its log is saved).
    _stop_on_sigterm()
    stream = None
    try:
        kept.save(project, name, service, started_by=kept.SERVE, log=log)
        print(f"scoring_uri: {service.scoring_uri}", flush=True)
        print(f"swagger_uri: {service.swagger_uri}", flush=True)
        if service.keys:
            print(f"key: {service.keys[0]}", flush=True)
        print(f"log_path: {log}", flush=True)
        _say(f"mldeploy: serving '{name}' ({service.target}); its log follows; Ctrl-C stops it")
        if service.target == "process":
            stream = logstream.follow_file(log, sys.stdout)
        else:
            stream = logstream.follow_container(service.container_id, log, sys.stdout)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM once it serves: the normal way to stop it
        pass
    finally:
        _stop_serving(service, stream, log)
        kept.mark_stopped(project, name)
        _say(f"mldeploy: stopped; `mldeploy logs {name}` prints its last log ({log})")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from pytest_mldeploy.core import kept
    from pytest_mldeploy.core.targets import get_target
    from pytest_mldeploy.core.targets.common import serving_port

    project = _load(args)
    deployment = project.deployment(args.deployment, _NAME_ONE)
    name = deployment.name
    _claim(project, name, kept.DEPLOY)
    if kept.find(project, name) is not None:
        kept.delete(project, name)
        _say(f"mldeploy: replaced the running '{name}'")
    target = get_target(args.target, notice=_say)
    log = kept.fresh_log(project, name)
    service = target.deploy(deployment, project, port=serving_port(deployment, args.port), keep=True, **_deploy_options(target, log))
    kept.save(project, name, service)
    print(f"scoring_uri: {service.scoring_uri}")
    print(f"swagger_uri: {service.swagger_uri}")
    if service.keys:
        print(f"key: {service.keys[0]}")
    _say(f"mldeploy: '{name}' is {service.state} on the {service.target} target; "
         f"`mldeploy logs {name}`, `mldeploy delete {name}`")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from pytest_mldeploy.core import kept

    project = _load(args)
    deployment = project.deployment(args.deployment, _NAME_ONE)
    text = kept.logs(project, deployment.name, args.tail)
    record = kept.load(project, deployment.name)
    if not kept.is_running(record):
        when = f" at {record['stopped_at']}" if record.get("stopped_at") else ""
        _say(f"mldeploy: '{deployment.name}' is not running (stopped{when}); this is its last log")
    sys.stdout.write(text)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from pytest_mldeploy.core import kept

    project = _load(args)
    deployment = project.deployment(args.deployment, _NAME_ONE)
    record = kept.delete(project, deployment.name)
    print(f"deleted: {deployment.name} ({record['target']})")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from pytest_mldeploy.checks.profiling import profile_deployment
    from pytest_mldeploy.checks.profiling.check import summarize

    project = _load(args)
    deployment = project.deployment(args.deployment, _NAME_ONE)
    out = Path(args.out or f"mldeploy-report/{deployment.name}")
    result = profile_deployment(project, deployment, args.target, out, progress=_say)
    print(summarize(result))
    for gate in result.gates:
        print(f"gate {gate.status}: {gate.message}")
    print(f"profile_json: {result.json_path}")
    print(f"profile_html: {result.html_path}")
    return 0 if result.gates_passed else 1


def cmd_check(args: argparse.Namespace) -> int:
    from pytest_mldeploy.checks.base import Outcome
    from pytest_mldeploy.check_run import CheckRunner
    from pytest_mldeploy.checks import all_checks

    project = _load(args)
    names = [project.deployment(args.deployment, _NAME_ONE).name] if args.deployment else list(project.deployments)
    checks = [c for c in all_checks() if c not in (args.skip or [])]
    runner = CheckRunner(project, target=args.target, examples=args.examples, notice=_say)
    counts = {"passed": 0, "failed": 0, "skipped": 0, "warnings": 0}
    try:
        for name in names:
            for check in checks:
                try:
                    result = runner.run_check(name, check)
                except MldeployError as exc:
                    print(f"{name}::{check} FAILED: {runner.start_failure(name, check, exc)}")
                    counts["failed"] += 1
                    break
                print(f"{name}::{check} {result.outcome.value.upper()}{': ' + result.summary if result.summary else ''}")
                for warning in result.warnings:
                    print(f"  warning: {warning}")
                counts[result.outcome.value] += 1
                counts["warnings"] += len(result.warnings)
                if result.outcome is Outcome.FAILED and result.report:
                    print(result.report)
    finally:
        runner.close()
    print(", ".join(f"{n} {what}" for what, n in counts.items() if n or what in ("passed", "failed")))
    return 1 if counts["failed"] else 0


def cmd_parity(args: argparse.Namespace) -> int:
    from pytest_mldeploy.checks.parity import format_report, run_parity
    from pytest_mldeploy.core.targets import get_target

    project = _load(args)
    deployment = project.deployment(args.deployment, _NAME_ONE)
    target = get_target(args.target, notice=_say)
    report = run_parity(deployment, project, target, examples=args.examples, seed=args.seed, progress=_say)
    print(format_report(report))
    return 0 if report.passed else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from pytest_mldeploy.compare import format_summary, run_compare
    from pytest_mldeploy.compare.publish import publish_markdown

    out = Path(args.out or "mldeploy-report/compare")
    _stop_on_sigterm()  # a stop mid-comparison deletes both services and any git worktree
    result = run_compare(args.baseline, args.candidate, config=Path(args.config) if args.config else None,
                         target=args.target, out=out, requests=Path(args.requests) if args.requests else None, progress=_say)
    data = result.to_dict()
    print(format_summary(data))
    print(f"compare_json: {result.json_path}")
    print(f"compare_html: {result.html_path}")
    if publish_markdown(data, Path(args.markdown) if args.markdown else None):
        print(f"compare_markdown: {args.markdown}")
    return 0 if result.passed else 1


def cmd_base_image(args: argparse.Namespace) -> int:
    from pytest_mldeploy.core import base_image

    # Under a lock: two `--if-missing` at once bootstrap once, the second finds the first's image.
    built, made = base_image.ensure_offline_base(args.tag, rebuild=not args.if_missing, progress=_say)
    if not made:
        _say(f"mldeploy: base image {args.tag} is present")
        return 0
    print(f"base_image: {built.tag} (python {built.python_version}, glibc {built.glibc_version})")
    return 0


def cmd_package(args: argparse.Namespace) -> int:
    from pytest_mldeploy.core import image

    project = _load(args)
    deployment = project.deployment(args.deployment, _NAME_ONE)
    if args.dockerfile_only:
        out = image.write_build_context(deployment, project, Path(args.dockerfile_only), progress=_say)
        print(f"build_context: {out}")
        print(f"build it with: docker build -t mldeploy/{deployment.name} {out}")
        return 0
    built = image.build_image(deployment, project, progress=_say)
    print(f"image: {built.tag}{' (reused)' if built.reused else ''}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from pytest_mldeploy.core.image_prune import prune_deployment_images

    project = _load(args)
    names = [project.deployment(args.deployment, _NAME_ONE).name] if args.deployment else list(project.deployments)
    for name in names:
        removed = prune_deployment_images(name, keep_last=args.keep)
        print(f"{name}: removed {len(removed)} image(s){': ' + ', '.join(removed) if removed else ''}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from pytest_mldeploy.core.registry import Registry

    if getattr(args, "registry", None):
        project, registry = None, Registry(Path(args.registry))
    else:
        project = _load(args)
        registry = Registry.for_project(project)
    if args.models_command == "register" and (getattr(args, "path", None) or getattr(args, "name", None)):
        if not (args.path and args.name) or args.deployment:
            raise ConfigError("models register: give --name and --path together (and --version if you like), or a DEPLOYMENT, not both")
        model = registry.register(args.name, Path(args.path), version=args.version)
        print(f"{model.name}:{model.version}  sha256:{model.sha256[:12]}  {model.filename}")
        return 0
    if project is None and args.models_command == "register":
        raise ConfigError("models register --registry: give --name and --path (a deployment's models need its config)")
    if args.models_command == "register":
        deployments = [project.deployment(args.deployment, _NAME_ONE)] if args.deployment else project.deployments.values()
        for deployment in deployments:
            for model in registry.register_deployment_models(deployment):
                print(f"{model.name}:{model.version}  sha256:{model.sha256[:12]}  {model.filename}")
        return 0
    if args.models_command == "download":
        path = registry.download(args.name, args.version, Path(args.out), exist_ok=True)
        print(f"downloaded: {path}")
        return 0
    if args.models_command == "delete":
        registry.delete(args.name, args.version)
        print(f"deleted: {args.name}{':' + str(args.version) if args.version else ' (all versions)'}")
        return 0
    if args.models_command == "gc":
        result = registry.gc()
        print(f"removed {len(result.removed_objects)} unreferenced object(s) ({result.freed_bytes} B) "
              f"and {result.removed_temp} leftover temp file(s) from {registry.root}")
        for sha in result.removed_objects:
            print(f"  sha256:{sha}")
        return 0
    models = registry.list(name=args.name, tags=args.tag or None)
    if args.json:
        print(json.dumps([_model_dict(m) for m in models], indent=2))
        return 0
    if not models:
        what = f"no model {args.name!r}" if args.name else "no models"
        print(f"{what}{' with those tags' if args.tag else ''} registered in {registry.root}")
    for m in models:
        tags = ", ".join(f"{k}={v}" for k, v in sorted(m.tags.items()))
        print(f"{m.name}:{m.version}  {m.filename}  {m.size} B  sha256:{m.sha256[:12]}  {m.created_at}  {tags}")
    return 0


def _model_dict(model) -> dict:
    from dataclasses import asdict

    data = asdict(model)
    data["path"] = str(model.path)
    return data


def cmd_export(args: argparse.Namespace) -> int:
    from pytest_mldeploy.core.export_v2 import export_azureml_v2, written

    project = _load(args)
    deployment = project.deployment(args.deployment, _NAME_ONE)
    report: Optional[Path] = Path(args.profile) if args.profile else None
    if report is None and not args.no_profile:
        for base in (Path.cwd(), project.root):
            candidate = base / "mldeploy-report" / deployment.name / "profile.json"
            if candidate.is_file():
                report = candidate
                break
    exported = export_azureml_v2(project, deployment, Path(args.out), profile_report=report)
    for path in written(exported):
        print(f"wrote: {path}")
    print(f"instance_type: {exported.reason}")
    _say(f"mldeploy: check it with `pytest --mldeploy` in {args.out}; deploy it with "
         f"`az ml online-endpoint create -f endpoint.yml` and `az ml online-deployment create -f {exported.deployment.name}`")
    return 0
