"""The `mldeploy` command: serve, deploy, package, profile and inspect deployments from a shell.

This module is the command line's grammar (`build_parser`) and `main`, which runs the chosen
command (`commands.py`) and prints errors pytest-mldeploy raises on purpose as one readable
message (exit 2), never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional, Sequence

from pytest_mldeploy._version import __version__
from pytest_mldeploy.commands import (
    cmd_base_image,
    cmd_check,
    cmd_compare,
    cmd_delete,
    cmd_deploy,
    cmd_export,
    cmd_logs,
    cmd_models,
    cmd_package,
    cmd_parity,
    cmd_profile,
    cmd_prune,
    cmd_serve,
)
from pytest_mldeploy.errors import MldeployError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mldeploy", description="Serve, package, deploy and profile Azure ML-style model deployments."
    )
    parser.add_argument("--version", action="version", version=f"pytest-mldeploy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    def with_config(p: argparse.ArgumentParser, deployment: str = "?") -> None:
        p.add_argument("deployment", nargs=deployment, metavar="DEPLOYMENT", help="a deployment of mldeploy.yaml")
        p.add_argument("--config", metavar="PATH",
                       help="mldeploy.yaml or an Azure ML v2 deployment YAML (default: mldeploy.yaml searched upward from here)")

    p = command("serve", cmd_serve, "Serve a deployment until Ctrl-C (a local process unless --target says otherwise), "
                                    "streaming its log (also kept in .mldeploy/services/DEPLOYMENT/service.log).")
    with_config(p)
    p.add_argument("--port", type=int, help="port on 127.0.0.1 (default: the deployment's `port`, else a free one)")
    p.add_argument("--target", choices=["auto", "docker", "process"], default="process")

    p = command("deploy", cmd_deploy, "Start a deployment and leave it running (until `mldeploy delete`).")
    with_config(p)
    p.add_argument("--target", choices=["auto", "docker", "process"], default="auto")
    p.add_argument("--port", type=int, help="host port on 127.0.0.1 (default: the deployment's `port`, else a free one)")

    p = command("logs", cmd_logs, "Print the log of a service started by `mldeploy deploy` or `mldeploy serve` "
                                  "(the last one's, after it stopped).")
    with_config(p)
    p.add_argument("--tail", type=int, help="only the last N lines")

    p = command("delete", cmd_delete, "Stop and remove a deployment started by `mldeploy deploy` "
                                      "(or forget a stopped `mldeploy serve` and its log).")
    with_config(p)

    p = command("profile", cmd_profile, "Profile a deployment under load: recommend CPU and memory, check the gates.")
    with_config(p)
    p.add_argument("--target", choices=["auto", "docker", "process"], default="auto")
    p.add_argument("--out", metavar="DIR", help="where profile.json and profile.html go (default: mldeploy-report/DEPLOYMENT)")

    p = command("check", cmd_check, "Deploy and run the built-in checks without pytest (exit 1 when one fails).")
    with_config(p)
    p.add_argument("--target", choices=["auto", "docker", "process"], default="auto")
    p.add_argument("--examples", type=int, default=50, help="Hypothesis examples for the properties check")
    p.add_argument("--skip", action="append", metavar="CHECK", help="skip a check (repeatable), e.g. --skip profile")

    p = command("parity", cmd_parity, "Run the deployment on our server and on Azure's azmlinfsrv, send both the same "
                                      "requests and list every difference; exit 1 on one that docs/server.md does not document.")
    with_config(p)
    p.add_argument("--target", choices=["auto", "docker", "process"], default="process")
    p.add_argument("--examples", type=int, default=20, help="schema-valid requests drawn by Hypothesis (default 20)")
    p.add_argument("--seed", type=int, default=0, help="Hypothesis seed, for the same requests every run (default 0)")

    p = command("compare", cmd_compare, "Deploy BASELINE and CANDIDATE side by side, send both the same requests and "
                                        "compare answers, contract, speed and input sensitivity; exit 1 when a gate fails.")
    sides = ("a deployment of the project, a v2 deployment name or file (blue/green), git:REV[:NAME], "
             "or image:TAG (an image built earlier)")
    p.add_argument("baseline", metavar="BASELINE", help=f"what serves today: {sides}")
    p.add_argument("candidate", metavar="CANDIDATE", help=f"what would replace it: {sides}")
    p.add_argument("--config", metavar="PATH", help="mldeploy.yaml or an Azure ML v2 deployment YAML (default: searched upward, "
                                                    "else the v2 deployment files of this folder)")
    p.add_argument("--target", choices=["auto", "docker", "process"], default="auto")
    p.add_argument("--out", metavar="DIR", help="where compare.json and compare.html go (default: mldeploy-report/compare)")
    p.add_argument("--requests", metavar="PATH", help="more requests to send both: a file of JSON bodies (one a line), one "
                                                      ".json request (Azure's sample-request.json), a folder or a .http file")
    p.add_argument("--markdown", metavar="FILE", help="also write a Markdown summary for a pull-request comment "
                                                      "(appended to $GITHUB_STEP_SUMMARY whenever that is set)")

    p = command("export", cmd_export, "Write a deployment as Azure ML v2 online endpoint and deployment YAML.")
    p.add_argument("format", choices=["azureml-v2"], help="what to write (azureml-v2: managed online endpoint YAML)")
    with_config(p)
    p.add_argument("--out", metavar="DIR", required=True, help="the folder to write endpoint.yml, DEPLOYMENT.yml and the conda file to")
    p.add_argument("--profile", metavar="PROFILE_JSON",
                   help="size instance_type from this profile report (default: mldeploy-report/DEPLOYMENT/profile.json when present)")
    p.add_argument("--no-profile", action="store_true", help="size instance_type from resources even when a profile report is present")

    p = command("base-image", cmd_base_image, "Build the offline base image from Debian packages (for hosts that cannot pull); "
                                              "installs mmdebstrap with apt-get first when it is missing and we are root.")
    from pytest_mldeploy.core.base_image import LOCAL_BASE_TAG

    p.add_argument("--tag", default=LOCAL_BASE_TAG)
    p.add_argument("--if-missing", action="store_true", help="do nothing when the tag already exists")

    p = command("package", cmd_package, "Build the deployment's image (reused when its inputs are unchanged).")
    with_config(p)
    p.add_argument("--dockerfile-only", metavar="OUT", help="write the whole build context to OUT instead of building")

    p = command("prune", cmd_prune, "Remove a deployment's older images (content-addressed caches; rebuilt on demand).")
    with_config(p)
    p.add_argument("--keep", type=int, default=1, metavar="N", help="keep the newest N images of each deployment (default 1)")

    p = command("models", cmd_models, "The local model registry.")
    p.add_argument("--config", metavar="PATH", help="mldeploy.yaml (default: searched upward from here)")
    p.add_argument("--registry", metavar="DIR", help="this registry folder instead of the project's (e.g. for azureml:NAME:VERSION references)")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")

    def action(name: str, help_: str) -> argparse.ArgumentParser:
        # --config after the action too (`models list --config X`); SUPPRESS keeps one given before it.
        a = msub.add_parser(name, help=help_, description=help_)
        a.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                       help="mldeploy.yaml (default: searched upward from here)")
        return a

    lp = action("list", "list registered models")
    lp.add_argument("--name")
    lp.add_argument("--tag", action="append", help="KEY or KEY=VALUE (repeatable)")
    lp.add_argument("--json", action="store_true")
    rp = action("register", "register the models a deployment declares, or one file or folder (--name, --path)")
    rp.add_argument("deployment", nargs="?")
    rp.add_argument("--name", help="with --path: the model's name")
    rp.add_argument("--path", metavar="PATH", help="register this model file or folder (with --name)")
    rp.add_argument("--version", type=int, metavar="N", help="with --path: exactly this version (default: the next)")
    dp = action("download", "copy a model version out of the registry")
    dp.add_argument("name")
    dp.add_argument("version", type=int)
    dp.add_argument("--out", default=".")
    xp = action("delete", "delete a model version (or every version)")
    xp.add_argument("name")
    xp.add_argument("version", type=int, nargs="?")
    action("gc", "remove stored content no registered version names (left by a crash), and dead temp files")
    p.set_defaults(name=None, tag=None, json=False, path=None, version=None, deployment=None)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except MldeployError as exc:
        print(f"mldeploy: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
