"""Put `azureml.contrib.services.*` and (when the real SDK is absent) `azureml.core.model` in sys.modules.

Entry scripts import `AMLRequest`, `rawhttp`, `AMLResponse` and `Model` from the Azure ML SDK; the
images run without it, as Azure's own server does for the contrib modules.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

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

