"""Which scoring server a deployment runs: ours (`mldeploy`) or Azure's own (`azureml`, azmlinfsrv).

`server: azureml` lets a team gate on exactly what production runs. Both targets ask this module
what to install and what command starts the server, so the image and the process target agree.
"""
from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, Mapping

from pytest_mldeploy.errors import ConfigError
from pytest_mldeploy.server import contract as c

MLDEPLOY = "mldeploy"
AZUREML = "azureml"
SERVERS = (MLDEPLOY, AZUREML)

#: Azure's inference server, the version measured in shared/reference/azureml-inference-server.md.
AZUREML_SERVER_REQUIREMENT = "azureml-inference-server-http==1.5.1"
#: `python -m` of this module is the `azmlinfsrv` console script (same function, no bin/ lookup).
AZUREML_MODULE = "azureml_inference_server_http"


def server_of(deployment: Any) -> str:
    """The deployment's server (`mldeploy` when it does not say)."""
    return getattr(deployment, "server", None) or MLDEPLOY


def requirements_for(deployment: Any) -> list[str]:
    """The deployment's requirements plus what its server needs beyond ours (which is always merged in)."""
    requirements = list(deployment.environment.requirements())
    if server_of(deployment) == AZUREML:
        if getattr(deployment, "entry_script", None) is None:
            raise ConfigError(f"deployment {deployment.name}: server: azureml needs an entry_script (Azure's inference "
                              "server runs a score.py; a model without one is served by ours); add entry_script or "
                              "use server: mldeploy")
        requirements.append(AZUREML_SERVER_REQUIREMENT)
    return requirements


def entry_script_path(env: Mapping[str, str]) -> str:
    """The absolute entry script for a layout's environment (`AML_APP_ROOT/AZUREML_SOURCE_DIRECTORY/AZUREML_ENTRY_SCRIPT`)."""
    root = PurePosixPath(env[c.APP_ROOT_VAR])
    source = env.get(c.SOURCE_DIRECTORY_VAR) or ""
    return str(root / source / env[c.ENTRY_SCRIPT_VAR]) if source else str(root / env[c.ENTRY_SCRIPT_VAR])


def command(server: str, python: str, env: Mapping[str, str], port: int, host: str = c.DEFAULT_HOST) -> list[str]:
    """The command line that serves the layout described by `env` on `port`.

    azmlinfsrv always listens on all interfaces (gunicorn `-b 0.0.0.0:PORT`) and needs the entry
    script on its command line; it reads the other settings from the same environment ours does.
    """
    if server == AZUREML:
        return [python, "-m", AZUREML_MODULE, "--entry_script", entry_script_path(env), "--port", str(port)]
    return [python, "-m", c.SERVER_MODULE, "--host", host, "--port", str(port)]
