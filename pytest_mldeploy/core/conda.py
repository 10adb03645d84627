"""Conda environments as Azure ML writes them, turned into pip requirements for our images.

Azure's conda files (`conda.yaml` of the v2 samples, `condaDependencies` of an SDK-written
`inferenceconfig.json`) list most packages as conda packages (`numpy=1.26.4`, `scikit-learn`)
and the rest under `pip:`. Our images install wheels from PyPI, so each conda package is
mapped to its PyPI name and version (`scikit-learn=1.7.0` → `scikit-learn==1.7.0`), the pip
section is kept as written, and what has no PyPI counterpart (`cudatoolkit`, `mkl`, ...) is
named in one notice instead of being dropped silently. `python=X.Y` is read as the Python the
environment asks for, `pip` itself is the installer and is not a requirement.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

# Conda package → PyPI project, where the names differ.
PYPI_NAMES: Dict[str, str] = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "py-xgboost-gpu": "xgboost",
    "py-opencv": "opencv-python-headless",
    "opencv": "opencv-python-headless",
    "pytables": "tables",
    "matplotlib-base": "matplotlib",
    "msgpack-python": "msgpack",
    "python-graphviz": "graphviz",
    "python-kaleido": "kaleido",
    "numpy-base": "numpy",
    "pyqt": "PyQt5",
    "tensorflow-base": "tensorflow",
    "tensorflow-mkl": "tensorflow",
    "lightgbm-cpu": "lightgbm",
    "pillow-simd": "pillow",
    "git-lfs": "",
}

# Conda packages that are not Python packages (compilers, C libraries, CUDA, metapackages):
# nothing to install from PyPI. Names starting with one of NON_PYTHON_PREFIXES count too.
NON_PYTHON = frozenset({
    "_libgcc_mutex", "_openmp_mutex", "blas", "ca-certificates", "cpuonly", "cudatoolkit", "cudnn", "curl",
    "ffmpeg", "gcc", "gxx", "gfortran", "git", "git-lfs", "graphviz", "intel-openmp", "ld_impl_linux-64", "libblas",
    "libcblas", "libffi", "libgcc", "libgcc-ng", "libgfortran", "libgfortran-ng", "libgomp", "liblapack",
    "libopenblas", "libprotobuf", "libsndfile", "libstdcxx-ng", "libuuid", "libxgboost", "llvm-openmp", "make",
    "mkl", "mkl-include", "mpich", "nccl", "ncurses", "nodejs", "nomkl", "openblas", "openjdk", "openmpi",
    "openssl", "readline", "sqlite", "tk", "tzdata", "xz", "zlib", "zstd",
})
NON_PYTHON_PREFIXES = ("cuda-", "r-", "libcu", "libnv")
# The installer itself: the image's venv brings pip.
INSTALLERS = frozenset({"pip", "conda"})

_SPEC = re.compile(
    r"""^\s*(?:(?P<channel>[\w.\-/]+)::)?       # conda-forge::numpy
        (?P<name>[A-Za-z0-9_][A-Za-z0-9_.\-]*)
        \s*(?P<rest>.*?)\s*$""",
    re.VERBOSE,
)


@dataclass
class CondaEnvironment:
    """What a conda environment asks for, in pip's terms.

    `requirements`: pip lines (mapped conda packages first, then the pip section as written);
    `python`: `X.Y` from `python=X.Y[.Z]` or None; `unmapped`: conda specs with no PyPI
    counterpart; `origins`: pip line → the conda spec it came from (for error messages).
    """

    requirements: List[str] = field(default_factory=list)
    python: Optional[str] = None
    python_spec: Optional[str] = None
    unmapped: List[str] = field(default_factory=list)
    origins: Dict[str, str] = field(default_factory=dict)

    def notices(self, where: str) -> List[str]:
        """One line naming every conda package that was left out, or none."""
        if not self.unmapped:
            return []
        return [
            f"{where}: conda package(s) not installed, no PyPI equivalent: {', '.join(self.unmapped)} "
            "(the image installs wheels from PyPI); if the service needs one, list its pip name under `pip:`"
        ]


_VERSION = re.compile(r"[0-9][0-9A-Za-z.+!_]*(\.?\*)?")


def _wildcard(number: str) -> str:
    """`1.8*` and `1.8.*` both mean any 1.8.x in conda; pip writes it `1.8.*`."""
    return number[:-1].rstrip(".") + ".*" if number.endswith("*") else number


def pip_version_spec(constraint: str) -> Optional[str]:
    """A conda version constraint in pip's syntax ("" for none), or None when it has no equivalent.

    `=1.7.0` → `==1.7.0`; `=1.7` → `==1.7.*` (conda's single `=` matches a prefix: any 1.7.x);
    `1.7.0` (the space form, `numpy 1.7.0`) → `==1.7.0`; `1.8*` → `==1.8.*`; `>=1.2,<2` stays.
    Alternatives (`1.2|1.3`) and malformed versions have none.
    """
    text = constraint.strip()
    if text in ("", "*", "=", "=*"):
        return ""
    if "|" in text:
        return None
    if text.startswith("=") and not text.startswith("=="):
        number = text[1:].strip()
        if not _VERSION.fullmatch(number):
            return None
        if "*" in number or number.count(".") >= 2:
            return "==" + _wildcard(number)
        return f"=={number}.*"
    parts = []
    for piece in text.split(","):
        match = re.fullmatch(r"(==|>=|<=|!=|~=|>|<)?\s*(.+)", piece.strip())
        if match is None or not _VERSION.fullmatch(match.group(2)):
            return None
        op, number = match.group(1) or "==", match.group(2)
        if "*" in number and op not in ("==", "!="):
            return None
        parts.append(op + _wildcard(number))
    return ",".join(parts)


def _split(spec: str) -> Optional[tuple[str, str]]:
    """(name, version constraint) of a conda match spec: `numpy=1.26.4=py311h...`, `numpy 1.26.*`, `numpy>=1.2`."""
    match = _SPEC.match(spec)
    if match is None:
        return None
    name, rest = match.group("name"), match.group("rest")
    if rest.startswith("["):
        return None  # numpy[version='>=1.2'] bracket syntax: rare, not mapped
    if rest.startswith("=") and not rest.startswith("=="):
        rest = rest[1:]
        version, _, _build = rest.partition("=")  # the build string after a second '=' is conda's alone
        return name, "=" + version.strip() if version.strip() else ""
    fields = rest.split()
    if len(fields) >= 2 and not re.match(r"^(==|>=|<=|!=|>|<)", fields[0]):
        return name, fields[0]  # `numpy 1.26.4 py311h...`: version then build
    return name, rest.replace(" ", "")


def _python_version(constraint: str) -> Optional[str]:
    match = re.match(r"^={0,2}\s*(\d+)\.(\d+)", constraint)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def from_conda(conda: Mapping[str, Any]) -> CondaEnvironment:
    """Map a parsed conda environment (`{channels, dependencies: [str | {pip: [...]}]}`) to pip requirements."""
    env = CondaEnvironment()
    pip_lines: List[str] = []
    for dep in conda.get("dependencies") or []:
        if isinstance(dep, dict):
            pip_lines.extend(str(item).strip() for item in dep.get("pip") or [] if str(item).strip())
            continue
        spec = str(dep).strip()
        if not spec:
            continue
        split = _split(spec)
        if split is None:
            env.unmapped.append(f"{spec} (unreadable spec)")
            continue
        name, constraint = split
        key = name.lower()
        if key == "python":
            env.python, env.python_spec = _python_version(constraint), spec
            continue
        if key in INSTALLERS:
            continue
        pypi = PYPI_NAMES.get(key, name)
        if not pypi or key in NON_PYTHON or key.startswith(NON_PYTHON_PREFIXES):
            env.unmapped.append(f"{spec} (not a Python package)")
            continue
        version = pip_version_spec(constraint)
        if version is None:
            env.unmapped.append(f"{spec} (version has no pip equivalent)")
            continue
        line = pypi + version
        if line not in env.origins:
            env.requirements.append(line)
            env.origins[line] = spec
    env.requirements.extend(pip_lines)
    return env
