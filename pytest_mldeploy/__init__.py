"""pytest-mldeploy: gate Azure ML-style model deployments in CI before they roll out."""

__version__ = "0.1.0"
