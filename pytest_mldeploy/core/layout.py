"""Lay out a deployment the way an Azure ML image does, and name it for the scoring server.

    APP_ROOT/azureml-models/NAME/VERSION/<registered file or folder>
    APP_ROOT/<basename of source_directory>/...   (a filtered copy of the source directory)

Model files are hard-linked from the registry store when the file system allows (they are
read-only there), copied otherwise. Walks are sorted so the same inputs give the same tree.
Config files that can hold keys (`mldeploy.yaml`, a `deploymentconfig.json` with `primaryKey` or
`secondaryKey`) are never copied: keys reach the server at run time only.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Set, Union

from pytest_mldeploy.core.nocode import SPEC_FILENAME as NOCODE_SPEC
from pytest_mldeploy.core.source_tree import ALWAYS_IGNORED, IGNORE_FILES, walk_source
from pytest_mldeploy.errors import BuildError
from pytest_mldeploy.server import contract as c

if TYPE_CHECKING:
    from pytest_mldeploy.core.config import Deployment
    from pytest_mldeploy.core.nocode import BuiltinScorer
    from pytest_mldeploy.core.registry import Registry, RegisteredModel


@dataclass
class AppLayout:
    """Where `lay_out_app` put things, and the environment that tells the scoring server."""

    app_root: Path
    source_dir: Path
    entry_script: Optional[Path]
    model_dir: Path
    service_name: str = ""
    #: The built-in scorer's description (relative to the app root) when there is no entry script.
    scorer_spec: Optional[str] = None
    settings: Dict[str, str] = field(default_factory=dict)
    models: List["RegisteredModel"] = field(default_factory=list)

    def server_env(self) -> Dict[str, str]:
        """`AML_APP_ROOT`, `AZUREML_*`, service settings and the deployment's own variables, for this layout."""
        return self._env(str(self.app_root))

    def relocated(self, new_root: str) -> Dict[str, str]:
        """`server_env()` for the same layout mounted at `new_root` (e.g. `/var/azureml-app` in an image)."""
        return self._env(new_root)

    def _env(self, root: str) -> Dict[str, str]:
        base: Union[Path, PurePosixPath] = Path(root) if root == str(self.app_root) else PurePosixPath(root)
        env = dict(self.settings)
        env.update(
            {
                c.APP_ROOT_VAR: str(base),
                c.MODEL_DIR_VAR: str(base / self.model_dir.relative_to(self.app_root).as_posix()),
            }
        )
        if self.scorer_spec is not None:
            env[c.SCORER_VAR] = self.scorer_spec
        else:
            assert self.entry_script is not None
            env[c.SOURCE_DIRECTORY_VAR] = self.source_dir.name
            env[c.ENTRY_SCRIPT_VAR] = self.entry_script.relative_to(self.source_dir).as_posix()
        return env


def lay_out_app(
    deployment: "Deployment", models: Sequence["RegisteredModel"], registry: "Registry", app_root: Union[str, Path]
) -> AppLayout:
    """Copy the source directory and link the registered models into `app_root` (which must be new or empty)."""
    root = Path(app_root).absolute()
    if root.exists() and any(root.iterdir()):
        raise BuildError(f"app layout folder {root} is not empty; give a new or empty folder")
    source = Path(deployment.source_directory or ".").absolute()
    if source.name == c.MODELS_DIRNAME:
        raise BuildError(f"deployment {deployment.name}: source_directory may not be named {c.MODELS_DIRNAME}; rename it")
    root.mkdir(parents=True, exist_ok=True)

    models_root = root / c.MODELS_DIRNAME
    models_root.mkdir()
    stored = [_place_model(model, registry, models_root) for model in models]
    model_dir = models_root / stored[0].name / str(stored[0].version) if len(stored) == 1 else models_root
    builtin = getattr(deployment, "builtin_scorer", None)
    if builtin is not None:
        return _no_code_layout(deployment, builtin, stored, root, model_dir)

    copied_source = root / source.name
    _copy_source(source, copied_source, {registry.root, root}, _secret_files(deployment))
    entry = copied_source / deployment.entry_script
    if not entry.is_file():
        raise BuildError(
            f"deployment {deployment.name}: entry_script {deployment.entry_script} was not copied: "
            f"an ignore rule in {source} ({', '.join(IGNORE_FILES)} or {', '.join(ALWAYS_IGNORED)}) excludes it"
        )
    return AppLayout(
        app_root=root,
        source_dir=copied_source,
        entry_script=entry,
        model_dir=model_dir,
        service_name=deployment.name,
        settings=_settings(deployment),
        models=stored,
    )


def _no_code_layout(
    deployment: "Deployment", builtin: "BuiltinScorer", stored: List["RegisteredModel"], root: Path, model_dir: Path
) -> AppLayout:
    """No entry script: no source copy, only the scorer's description beside the models (core/nocode.py)."""
    if len(stored) != 1:
        raise BuildError(f"deployment {deployment.name}: a deployment without entry_script serves exactly one model")
    model_in_app = (model_dir / stored[0].filename).relative_to(root).as_posix()
    spec = json.dumps(builtin.spec(model_in_app), indent=1, sort_keys=True)
    (root / NOCODE_SPEC).write_text(spec + "\n", encoding="utf-8")
    return AppLayout(
        app_root=root,
        source_dir=root,
        entry_script=None,
        model_dir=model_dir,
        service_name=deployment.name,
        settings=_settings(deployment),
        models=stored,
        scorer_spec=NOCODE_SPEC,
    )


def _secret_files(deployment: "Deployment") -> Set[Path]:
    """Config files that may hold keys and are never copied: the deployment's `deploymentconfig.json`."""
    config = getattr(deployment, "deployment_config", None)
    return {Path(os.path.realpath(config))} if config else set()


_KEY_FIELDS = ("primaryKey", "secondaryKey")


def holds_azure_keys(path: Path) -> bool:
    """Whether `path` is an Azure deployment config with `primaryKey`/`secondaryKey` (any deployment's)."""
    if path.suffix.lower() != ".json":
        return False
    try:
        if path.stat().st_size > 1_000_000:
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and any(data.get(key) for key in _KEY_FIELDS)


def _settings(deployment: "Deployment") -> Dict[str, str]:
    """The server settings a deployment chooses (everything but the paths)."""
    env = dict(deployment.environment.variables)
    env.update(
        {
            c.SERVICE_NAME_VAR: deployment.name,
            c.SCORING_TIMEOUT_MS_VAR: str(deployment.scoring_timeout_ms),
            c.CORS_ORIGINS_VAR: ",".join(deployment.cors_origins),
            c.WORKER_COUNT_VAR: str(deployment.workers),
            c.MAX_BODY_BYTES_VAR: str(deployment.max_body_bytes),
        }
    )
    if getattr(deployment, "max_concurrent_requests", None):
        env[c.MAX_CONCURRENT_REQUESTS_VAR] = str(deployment.max_concurrent_requests)
    if deployment.auth.enabled and deployment.auth.keys:
        env[c.AUTH_KEYS_VAR] = ",".join(deployment.auth.keys)
    return env


def _place_model(model: "RegisteredModel", registry: "Registry", models_root: Path) -> "RegisteredModel":
    """Link (or copy) one registered model to azureml-models/NAME/VERSION/<filename>."""
    current = registry.get(model.name, model.version)
    if current.sha256 != model.sha256:
        raise BuildError(
            f"model {model.id} in {registry.root} has other content than the one given "
            f"({current.sha256[:12]}… vs {model.sha256[:12]}…); register the deployment's models again"
        )
    if not current.path.exists():
        raise BuildError(f"model {model.id}: its content {current.path} is missing from the registry; register it again")
    target = models_root / current.name / str(current.version) / current.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    if not current.is_dir:
        link_or_copy(current.path, target)
        return current
    for folder, dirs, files in os.walk(current.path):
        dirs.sort()
        rel = Path(folder).relative_to(current.path)
        (target / rel).mkdir(parents=True, exist_ok=True)
        for name in sorted(files):
            link_or_copy(Path(folder) / name, target / rel / name)
    return current


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link `src` to `dst` (fast, no extra space), copying where a link cannot be made."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _copy_source(source: Path, target: Path, skip_dirs: Set[Path], skip_files: Set[Path]) -> None:
    """Copy what `walk_source` yields of `source` to `target`, leaving out `skip_files` and Azure configs that hold keys."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in walk_source(source, skip_dirs):
        if entry.is_dir:
            (target / entry.rel).mkdir(parents=True, exist_ok=True)
        elif Path(os.path.realpath(entry.path)) not in skip_files and not holds_azure_keys(entry.path):
            shutil.copy2(entry.path, target / entry.rel)
