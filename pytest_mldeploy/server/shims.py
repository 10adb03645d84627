"""Put `azureml.contrib.services.*` and (when the real SDK is absent) `azureml.core.model` in sys.modules.

Entry scripts import `AMLRequest`, `rawhttp`, `AMLResponse` and `Model` from the Azure ML SDK; the
images run without it, as Azure's own server does for the contrib modules. Imports that fail
for a well-known reason (old scikit-learn, pandas, numpy or SDK idioms in Azure's samples) get
their fix named by `with_known_fix`.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import types
from typing import Optional

from . import amlhttp, models


class Model:
    """The part of `azureml.core.model.Model` an entry script uses inside a service."""

    @staticmethod
    def get_model_path(model_name: str, version: object = None, _workspace: object = None) -> str:
        """Path of a registered model's file or folder in this service (latest version when none is given)."""
        return models.get_model_path(model_name, version, _workspace)  # type: ignore[arg-type]


def install() -> None:
    """Register the shim modules (idempotent)."""
    real_core = _importable("azureml.core")
    _module("azureml", package=True)
    _module("azureml.contrib", package=True)
    _module("azureml.contrib.services", package=True)
    _module(
        "azureml.contrib.services.aml_request",
        AMLRequest=amlhttp.AMLRequest,
        rawhttp=amlhttp.rawhttp,
        _rawHttpRequested=False,
    )
    _module("azureml.contrib.services.aml_response", AMLResponse=amlhttp.AMLResponse)
    if not real_core:
        _module("azureml.core", package=True, Model=Model)
        _module("azureml.core.model", Model=Model)


def _importable(name: str) -> bool:
    if name in sys.modules:
        return not getattr(sys.modules[name], "__mldeploy_shim__", False)
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _module(name: str, package: bool = False, **attrs: object) -> types.ModuleType:
    """The module `name`: the real one when importable and nothing is to be set, else a shim."""
    existing = sys.modules.get(name)
    if existing is None and not attrs and _importable(name):
        existing = importlib.import_module(name)
    if existing is None or (attrs and not getattr(existing, "__mldeploy_shim__", False)):
        module = types.ModuleType(name, f"pytest-mldeploy stand-in for {name}")
        module.__mldeploy_shim__ = True  # type: ignore[attr-defined]
        if package:
            module.__path__ = []  # type: ignore[attr-defined]
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent and parent in sys.modules:
            setattr(sys.modules[parent], child, module)
        existing = module
    for key, value in attrs.items():
        setattr(existing, key, value)
    return existing



#: (pattern over "ExceptionType: message", fix). The first match wins.
KNOWN_FIXES: list[tuple[str, str]] = [
    (r"sklearn\.externals(\.joblib|'?\)?.*\bjoblib\b)|\bjoblib\b.*sklearn\.externals",
     "use `import joblib` (scikit-learn 0.23 removed sklearn.externals.joblib) and list joblib in the environment"),
    (r"sklearn\.externals.*\bsix\b|\bsix\b.*sklearn\.externals",
     "use `import six` (scikit-learn 0.23 removed sklearn.externals.six) and list six in the environment"),
    (r"sklearn\.cross_validation|sklearn\.grid_search",
     "import it from sklearn.model_selection (scikit-learn 0.20 moved it there)"),
    (r"'Imputer'.*sklearn\.preprocessing",
     "use `from sklearn.impute import SimpleImputer` (scikit-learn 0.22 removed preprocessing.Imputer)"),
    (r"'json_normalize'.*pandas\.io\.json",
     "use `pandas.json_normalize` (pandas 2.0 removed pandas.io.json.json_normalize)"),
    (r"cannot import name '(Mapping|MutableMapping|Sequence|Iterable|Callable)' from 'collections'",
     "import it from collections.abc (Python 3.10 removed the old aliases)"),
    (r"module 'numpy' has no attribute '(float|int|bool|object|str|complex)'",
     "use the builtin (float, int, bool, object, str, complex): numpy 1.24 removed np.float and its kin"),
    (r"cannot import name '(Workspace|Run|Experiment|Dataset|Datastore|Environment)' from 'azureml\.core'",
     "a service has no workspace: read models with Model.get_model_path or AZUREML_MODEL_DIR, "
     "or install azureml-core in the environment"),
    (r"No module named 'azureml\.(monitoring|core\.run|core\.workspace|train)",
     "install the Azure ML package that provides it (azureml-monitoring, azureml-core, ...) in the environment, "
     "or remove the import: the scoring server does not need it"),
]


def known_fix(exc: BaseException) -> Optional[str]:
    """The fix for a well-known import failure (see KNOWN_FIXES), or None."""
    text = f"{type(exc).__name__}: {exc}"
    name = getattr(exc, "name", None)
    if name:
        text += f" (module {name})"
    for pattern, fix in KNOWN_FIXES:
        if re.search(pattern, text):
            return fix
    return None


def with_known_fix(exc: BaseException) -> Optional[BaseException]:
    """A copy of `exc` whose message ends with its known fix (raise it `from exc`), or None.

    The fix goes into the exception's own line, so the service's failure reason (the last line of
    the traceback in the log) carries it.
    """
    fix = known_fix(exc)
    if fix is None:
        return None
    # One line (the original, whole, stays in the chained traceback): the failure reason reads only that line.
    first_line = (str(exc).splitlines() or [""])[0]
    message = f"{first_line} -- known fix: {fix}"
    if isinstance(exc, ImportError):
        return type(exc)(message, name=exc.name, path=exc.path)
    try:
        return type(exc)(message)
    except Exception:  # an exception type with an unusual constructor
        return RuntimeError(f"{type(exc).__name__}: {message}")
