"""Conda environments in Azure's shapes, mapped to pip requirements (core/conda.py)."""
from __future__ import annotations

import pytest

from pytest_mldeploy.core.conda import from_conda, pip_version_spec

# The shape of an azureml-examples v2 `conda.yaml` (written here, not copied).
V2_CONDA = {
    "name": "model-env",
    "channels": ["conda-forge"],
    "dependencies": [
        "python=3.10.12",
        "numpy=1.26.4",
        "pip=23.3",
        "scikit-learn=1.7.0",
        "scipy=1.11",
        "pandas",
        {"pip": ["azureml-inference-server-http", "inference-schema[numpy-support]==1.8.0", "joblib"]},
    ],
}


def test_conda_packages_become_pypi_pins_and_the_pip_section_is_kept():
    env = from_conda(V2_CONDA)
    assert env.requirements == [
        "numpy==1.26.4",
        "scikit-learn==1.7.0",
        "scipy==1.11.*",
        "pandas",
        "azureml-inference-server-http",
        "inference-schema[numpy-support]==1.8.0",
        "joblib",
    ]
    assert env.python == "3.10" and env.python_spec == "python=3.10.12"
    assert env.unmapped == [] and env.notices("conda.yaml") == []
    assert env.origins["scikit-learn==1.7.0"] == "scikit-learn=1.7.0"


@pytest.mark.parametrize("spec, line", [
    ("pytorch=2.1.0", "torch==2.1.0"),
    ("conda-forge::py-xgboost=2.0.3", "xgboost==2.0.3"),
    ("matplotlib-base 3.8.*", "matplotlib==3.8.*"),
    ("numpy=1.26.4=py311h64a7726_0", "numpy==1.26.4"),
    ("numpy 1.26.4 py311h64a7726_0", "numpy==1.26.4"),
    ("numpy>=1.24,<2", "numpy>=1.24,<2"),
    ("numpy==1.26.4", "numpy==1.26.4"),
    ("msgpack-python", "msgpack"),
    ("setuptools=68", "setuptools==68.*"),
])
def test_names_and_versions_are_mapped(spec, line):
    assert from_conda({"dependencies": [spec]}).requirements == [line]


def test_packages_without_a_pypi_counterpart_are_named_in_one_notice():
    env = from_conda({"dependencies": ["python=3.8", "cudatoolkit=11.3", "mkl", "libgcc-ng", "r-base", "cuda-nvcc",
                                       "numpy=1.2|1.3", "pip", "numpy=1.26.4"]})
    assert env.requirements == ["numpy==1.26.4"]
    (notice,) = env.notices("env.yml")
    assert notice.startswith("env.yml: conda package(s) not installed, no PyPI equivalent: cudatoolkit=11.3 (not a Python package), mkl")
    for spec in ("libgcc-ng", "r-base", "cuda-nvcc", "numpy=1.2|1.3 (version has no pip equivalent)"):
        assert spec in notice
    assert "pip" not in env.unmapped  # the installer, not a requirement


def test_the_same_package_twice_is_listed_once():
    assert from_conda({"dependencies": ["numpy=1.26.4", "numpy-base=1.26.4"]}).requirements == ["numpy==1.26.4"]


@pytest.mark.parametrize("constraint, expected", [
    ("", ""), ("=1.7.0", "==1.7.0"), ("=1.7", "==1.7.*"), ("1.7.0", "==1.7.0"), ("1.8*", "==1.8.*"),
    ("=1.8.*", "==1.8.*"), (">=1.2,<2", ">=1.2,<2"), ("~=1.4", "~=1.4"), ("1.2|1.3", None), (">1.2*", None), ("=x", None),
])
def test_version_constraints(constraint, expected):
    assert pip_version_spec(constraint) == expected
