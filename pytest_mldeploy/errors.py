"""Errors a user sees: each names the thing, the place and the fix."""


class MldeployError(Exception):
    """Base of every error pytest-mldeploy raises on purpose; shown without a traceback."""


class ConfigError(MldeployError):
    """`mldeploy.yaml` (or an Azure ML CLI file it points to) is wrong.

    The message reads `FILE: KEY.PATH: what is wrong`.
    """


class RegistryError(MldeployError):
    """A model registry operation was refused (bad name, missing version, unreadable store)."""


class BuildError(MldeployError):
    """An image or environment build failed; the message carries the failing step and its log."""


class ServiceError(MldeployError):
    """A service did not reach Healthy; the message carries the state, the reason and the log tail."""
