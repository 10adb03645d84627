"""mldeploy.yaml loading: the example project, defaults, requirements forms and the `FILE: key.path: problem` errors."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from pytest_mldeploy.core.config import DEFAULT_BASE_IMAGE, load_project
from pytest_mldeploy.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "example_projects" / "sklearn-diabetes"


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example project as the working directory (so error messages say `mldeploy.yaml`)."""
    target = tmp_path / "proj"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__"))
    monkeypatch.chdir(target)
    monkeypatch.delenv("MLDEPLOY_BASE_IMAGE", raising=False)
    return target


def write(project_dir: Path, text: str) -> Path:
    path = project_dir / "mldeploy.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path: object = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_project(path)
    return str(info.value)


def test_example_project_loads_with_absolute_paths(project_dir: Path) -> None:
    project = load_project()
    assert project.config_path == project_dir / "mldeploy.yaml"
    assert project.registry_dir == project_dir / ".mldeploy"
    assert project.base_image == DEFAULT_BASE_IMAGE
    d = project.deployment("diabetes")
    assert d.name == "diabetes"
    assert d.source_directory == project_dir
    assert d.entry_script == "score.py"
    assert d.entry_script_path.is_file()
    [model] = d.models
    assert model.name == "sklearn_regression_model"
    assert model.path == project_dir / "models" / "sklearn_regression_model.pkl"
    assert model.version is None
    assert model.tags == {"area": "diabetes", "type": "regression"}
    assert d.environment.requirements() == ["scikit-learn==1.9.1", "joblib", "inference-schema[numpy-support]"]
    assert (d.resources.cpu, d.resources.memory_gb) == (1, 1)
    assert d.profile.requests == project_dir / "sample_requests.txt"
    assert d.profile.duration_s == 20 and d.profile.max_concurrency == 32 and d.profile.margin == 0.15
    assert d.gates.latency_p95_ms == 200 and d.gates.latency_p99_ms is None
    assert (d.scoring_timeout_ms, d.max_body_bytes, d.workers, d.health_timeout_s) == (60000, 10485760, 1, 120)
    assert d.auth.enabled is False and d.cors_origins == []
    assert d.base_image == DEFAULT_BASE_IMAGE


def test_search_upward_from_a_subfolder(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project_dir / "models")
    assert load_project().root == project_dir


def test_no_config_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert "mldeploy.yaml: not found in" in error_of()


def test_minimal_deployment_gets_defaults(project_dir: Path) -> None:
    write(project_dir, "deployments:\n  d1:\n    entry_script: score.py\n")
    d = load_project().deployments["d1"]
    assert d.models == [] and d.environment.requirements() == []
    assert (d.resources.cpu, d.resources.memory_gb) == (0.1, 0.5)
    assert d.profile.requests is None and d.gates.cpu is None


def test_defaults_merge_and_top_level_keys(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        project_dir,
        """\
        registry: ../shared-registry
        base_image: python:3.11-slim
        defaults:
          resources: {cpu: 2, memory_gb: 4}
          workers: 3
          environment: {pip: [joblib]}
        deployments:
          a: {entry_script: score.py}
          b:
            entry_script: score.py
            resources: {memory_gb: 1}
            environment: {variables: {MODE: fast, LEVEL: 2, "ON": true}}
            auth: {enabled: true}
        """,
    )
    project = load_project()
    assert project.registry_dir == project_dir.parent / "shared-registry"
    a, b = project.deployments["a"], project.deployments["b"]
    assert (a.resources.cpu, a.resources.memory_gb, a.workers) == (2, 4, 3)
    assert (b.resources.cpu, b.resources.memory_gb) == (2, 1)
    assert b.environment.requirements() == ["joblib"]
    assert b.environment_variables == {"MODE": "fast", "LEVEL": "2", "ON": "true"}
    assert b.auth.enabled and len(b.auth.keys) == 2 and b.auth.keys[0] != b.auth.keys[1]
    assert a.base_image == "python:3.11-slim"
    monkeypatch.setenv("MLDEPLOY_BASE_IMAGE", "local/python:3.11")
    assert load_project().deployments["a"].base_image == "local/python:3.11"


def test_requirements_file_with_includes(project_dir: Path) -> None:
    (project_dir / "reqs").mkdir()
    (project_dir / "reqs" / "base.txt").write_text("numpy>=1.26  # pinned below\n-c constraints.txt\n")
    (project_dir / "reqs" / "constraints.txt").write_text("numpy<3\n")
    (project_dir / "requirements.txt").write_text(
        "# service deps\njoblib\n-r reqs/base.txt\nscikit-learn==1.9.1 \\\n    --hash=sha256:abc\n\n"
    )
    write(project_dir, "deployments:\n  d:\n    entry_script: score.py\n    environment: {requirements: requirements.txt}\n")
    assert load_project().deployments["d"].environment.requirements() == [
        "joblib",
        "numpy>=1.26",
        f"-c {project_dir / 'reqs' / 'constraints.txt'}",
        "scikit-learn==1.9.1      --hash=sha256:abc",
    ]


def test_conda_file_pip_part_and_python(project_dir: Path) -> None:
    (project_dir / "environment.yml").write_text(
        "name: svc\ndependencies:\n  - python=3.11.4\n  - pip\n  - pip:\n    - joblib\n    - scikit-learn==1.9.1\n"
    )
    write(project_dir, "deployments:\n  d:\n    entry_script: score.py\n    environment: {conda_file: environment.yml}\n")
    env = load_project().deployments["d"].environment
    assert env.requirements() == ["joblib", "scikit-learn==1.9.1"]
    assert env.python_version() == "3.11"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "deployments:\n  diabetes:\n    entry_script: score.py\n    models:\n      - {name: m, path: models/m.pkl}\n",
            "mldeploy.yaml: deployments.diabetes.models[0].path: models/m.pkl does not exist",
        ),
        (
            "deployments:\n  diabetes:\n    entry_scrpit: score.py\n",
            "mldeploy.yaml: deployments.diabetes.entry_script: required key is missing\n"
            "mldeploy.yaml: deployments.diabetes.entry_scrpit: unknown key (did you mean 'entry_script'?)",
        ),
        (
            "deployments:\n  diabetes:\n    entry_script: score.py\n    resources: {cpu: lots}\n",
            "mldeploy.yaml: deployments.diabetes.resources.cpu: expected a number, got 'lots'",
        ),
        (
            "deployments:\n  diabetes:\n    entry_script: score.py\n    gates: {latency_p95: 200}\n",
            "mldeploy.yaml: deployments.diabetes.gates.latency_p95: unknown key (did you mean 'latency_p95_ms'?)",
        ),
        (
            "deployments:\n  d:\n    entry_script: score.py: x\n",
            "mldeploy.yaml: line 3, column 27: YAML syntax error: mapping values are not allowed here",
        ),
        (
            "deployment:\n  diabetes: {}\n",
            "mldeploy.yaml: deployments: required key is missing\n"
            "mldeploy.yaml: deployment: unknown key (did you mean 'deployments'?)",
        ),
        (
            "deployments:\n  ../evil:\n    entry_script: score.py\n",
            "mldeploy.yaml: deployments.../evil.name: deployment name '../evil' is not allowed: "
            "use letters, digits, '.', '_' and '-', starting with a letter or digit",
        ),
        (
            "deployments:\n  d:\n    entry_script: score.py\n    entry_script: other.py\n",
            "mldeploy.yaml: line 4, column 5: YAML syntax error: duplicate key 'entry_script'",
        ),
        (
            "deployments:\n  d:\n    entry_script: score.py\n    environment: {python: 3.10}\n",
            'mldeploy.yaml: deployments.d.environment.python: write the version in quotes, e.g. "3.11": '
            "YAML reads it as a number (here 3.1)",
        ),
        (
            "deployments:\n  d:\n    entry_script: score.py\n    environment: {variables: {AZUREML_MODEL_DIR: /x}}\n",
            "mldeploy.yaml: deployments.d.environment.variables.AZUREML_MODEL_DIR: set by mldeploy from models; set that instead",
        ),
        (
            "deployments:\n  d:\n    entry_script: score.py\n    environment: {pip: [joblib], requirements: requirements.txt}\n",
            "mldeploy.yaml: deployments.d.environment.requirements: requirements.txt does not exist",
        ),
        (
            "deployments:\n  d:\n    entry_script: score.py\n    workers: 0\n    gates: {max_error_rate: 2}\n",
            "mldeploy.yaml: deployments.d.gates.max_error_rate: must be at most 1, got 2\n"
            "mldeploy.yaml: deployments.d.workers: must be at least 1, got 0",
        ),
        (
            "deployments:\n  d:\n    entry_script: score.py\n    environment: {variables: {ON: 1}}\n",
            "mldeploy.yaml: deployments.d.environment.variables: a variable name was read as the boolean true: "
            "YAML takes unquoted ON/OFF/YES/NO/TRUE/FALSE as booleans; quote the name",
        ),
        (
            "defaults: {entry_scipt: score.py}\ndeployments:\n  d: {entry_script: score.py}\n",
            "mldeploy.yaml: defaults.entry_scipt: unknown key (did you mean 'entry_script'?)",
        ),
        (
            "deployments:\n  d:\n    entry_script: score.py\n    models:\n      - {path: models/sklearn_regression_model.pkl}\n"
            "      - {path: models/sklearn_regression_model.pkl}\n",
            "mldeploy.yaml: deployments.d.models: model name 'sklearn_regression_model' is used twice; give each model its own name",
        ),
    ],
)
def test_error_messages(project_dir: Path, body: str, expected: str) -> None:
    write(project_dir, body)
    assert error_of() == expected


def test_two_forms_of_environment_refused(project_dir: Path) -> None:
    (project_dir / "requirements.txt").write_text("joblib\n")
    write(project_dir, "deployments:\n  d:\n    entry_script: score.py\n    environment: {pip: [joblib], requirements: requirements.txt}\n")
    assert error_of() == "mldeploy.yaml: deployments.d.environment: give one of pip, requirements, conda_file or conda, not pip and requirements"


def test_missing_include_names_the_requirements_file(project_dir: Path) -> None:
    (project_dir / "requirements.txt").write_text("joblib\n-r nowhere.txt\n")
    write(project_dir, "deployments:\n  d:\n    entry_script: score.py\n    environment: {requirements: requirements.txt}\n")
    assert error_of() == f"{project_dir / 'requirements.txt'}:2: -r nowhere.txt: {project_dir / 'nowhere.txt'} does not exist"


def test_error_names_the_file_outside_the_working_directory(project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(project_dir, "deployments:\n  d: {entry_script: nope.py}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert error_of(project_dir / "mldeploy.yaml") == f"{project_dir / 'mldeploy.yaml'}: deployments.d.entry_script: nope.py does not exist"


def test_unknown_deployment_suggests(project_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"no deployment 'diabetis' \(did you mean 'diabetes'\?\); there are: diabetes"):
        load_project().deployment("diabetis")


# ---- paths must stay inside the project (issue #9, hole 4) -----------------------------------------


def _outside_case(project_dir: Path, case: str) -> tuple[str, str]:
    """(mldeploy.yaml body, the start of the expected error after `mldeploy.yaml: `) for one escape."""
    head = "deployments:\n  d:\n    entry_script: score.py\n"
    if case == "absolute":
        return head + "    models: [{path: /etc/passwd}]\n", "deployments.d.models[0].path: /etc/passwd is outside the project;"
    if case == "dotdot":
        return (head + "    models: [{path: ../../../../../../../etc/passwd}]\n",
                "deployments.d.models[0].path: ../../../../../../../etc/passwd is outside the project;")
    if case == "symlink":
        (project_dir / "models" / "shadow.pkl").symlink_to("/etc/shadow")
        return (head + "    models: [{path: models/shadow.pkl}]\n",
                "deployments.d.models[0].path: models/shadow.pkl is outside the project (it leads to /etc/shadow);")
    if case == "symlink-in-model-folder":
        folder = project_dir / "models" / "bundle"
        folder.mkdir()
        (folder / "weights.bin").write_bytes(b"w")
        (folder / "extra").symlink_to("/etc/hostname")
        return (head + "    models: [{path: models/bundle}]\n",
                "deployments.d.models[0].path: models/bundle: extra is a symlink to /etc/hostname, outside the project;")
    if case == "source-root":
        return head + "    source_directory: /\n", "deployments.d.source_directory: / is outside the project;"
    if case == "source-symlink":
        (project_dir / "src").symlink_to("/usr/lib")
        return head + "    source_directory: src\n", "deployments.d.source_directory: src is outside the project (it leads to /usr/lib);"
    if case == "requirements":
        return (head + "    environment: {requirements: /etc/hostname}\n",
                "deployments.d.environment.requirements: /etc/hostname is outside the project;")
    if case == "profile-requests":
        return (head + "    profile: {requests: ../../../../../../../etc/hostname}\n",
                "deployments.d.profile.requests: ../../../../../../../etc/hostname is outside the project;")
    if case == "inference-config":
        outside = project_dir.parent / "inferenceconfig.json"
        outside.write_text('{"entryScript": "score.py"}')
        return ("deployments:\n  d:\n    inference_config: ../inferenceconfig.json\n",
                "deployments.d.inference_config: ../inferenceconfig.json is outside the project;")
    raise AssertionError(case)


OUTSIDE_CASES = ["absolute", "dotdot", "symlink", "symlink-in-model-folder", "source-root", "source-symlink",
                 "requirements", "profile-requests", "inference-config"]


@pytest.mark.parametrize("case", OUTSIDE_CASES)
def test_paths_outside_the_project_are_refused(project_dir: Path, case: str) -> None:
    body, expected = _outside_case(project_dir, case)
    write(project_dir, body)
    message = error_of()
    assert message.startswith(f"mldeploy.yaml: {expected}"), message
    # A symlink inside the project is also a problem of source_directory (the layout would copy it): a second line.
    for line in message.splitlines():
        assert line.startswith("mldeploy.yaml: deployments.d.")
        assert line.endswith(f"move it into the project folder {project_dir}, or list its folder under allowed_outside_paths in mldeploy.yaml")


def test_allowed_outside_paths_opts_in(project_dir: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared-models"
    shared.mkdir()
    (shared / "m.pkl").write_bytes(b"model")
    (project_dir / "models" / "linked.pkl").symlink_to(shared / "m.pkl")
    body = ("deployments:\n  d:\n    entry_script: score.py\n"
            "    models: [{path: ../shared-models/m.pkl}, {name: linked, path: models/linked.pkl}]\n")
    write(project_dir, body)
    assert "../shared-models/m.pkl is outside the project" in error_of()
    write(project_dir, "allowed_outside_paths: [../shared-models]\n" + body)
    d = load_project().deployments["d"]
    assert [m.path for m in d.models] == [shared / "m.pkl", project_dir / "models" / "linked.pkl"]
    # The opt-in names folders: anything else outside is still refused.
    write(project_dir, "allowed_outside_paths: [../shared-models]\n"
          "deployments:\n  d:\n    entry_script: score.py\n    models: [{path: /etc/passwd}]\n")
    assert "/etc/passwd is outside the project" in error_of()
    write(project_dir, "allowed_outside_paths: [../nowhere]\ndeployments:\n  d: {entry_script: score.py}\n")
    assert error_of() == "mldeploy.yaml: allowed_outside_paths[0]: ../nowhere does not exist"


def test_a_symlink_the_layout_would_copy_out_of_the_project_is_refused(project_dir: Path) -> None:
    write(project_dir, "deployments:\n  d: {entry_script: score.py}\n")
    (project_dir / ".venv" / "bin").mkdir(parents=True)
    (project_dir / ".venv" / "bin" / "python").symlink_to("/usr/bin/python3")  # ignored by the layout: fine
    (project_dir / "lib").symlink_to(project_dir / "models")  # inside the project: fine
    assert load_project().deployments["d"].source_directory == project_dir
    (project_dir / "models" / "creds").symlink_to("/etc/hostname")  # reached through lib/ as well
    assert error_of() == (
        f"mldeploy.yaml: deployments.d.source_directory: lib/creds in {project_dir} is a symlink to /etc/hostname, "
        f"outside the project; move it into the project folder {project_dir}, or list its folder under "
        "allowed_outside_paths in mldeploy.yaml"
    )
    (project_dir / ".gitignore").write_text("creds\n")  # not copied: fine again
    assert load_project().deployments["d"].source_directory == project_dir


def test_an_escaping_entry_script_is_still_refused(project_dir: Path) -> None:
    (project_dir / "src").mkdir()
    write(project_dir, "deployments:\n  d:\n    source_directory: src\n    entry_script: ../score.py\n")
    assert error_of() == f"mldeploy.yaml: deployments.d.entry_script: ../score.py is outside source_directory {project_dir / 'src'}; move it in"


# ---- invalid UTF-8 and non-finite numbers (issue #9, holes 6 and 10) -----------------------------------


def test_invalid_utf8_is_a_one_line_error(project_dir: Path) -> None:
    (project_dir / "mldeploy.yaml").write_bytes(b"deployments:\n  d:\n    entry_script: sc\xffore.py\n")
    assert error_of() == "mldeploy.yaml: line 3, column 21: not valid UTF-8 (byte 0xff); save the file as UTF-8"
    (project_dir / "mldeploy.yaml").write_bytes("deployments:\n  d: {entry_script: score.py}\n".encode("utf-16"))
    assert error_of().startswith("mldeploy.yaml: line 1, column 1: not valid UTF-8 (byte 0xff)")


def test_invalid_utf8_in_a_requirements_file_is_a_one_line_error(project_dir: Path) -> None:
    (project_dir / "requirements.txt").write_bytes(b"joblib\nscikit-learn\xe9\n")
    write(project_dir, "deployments:\n  d:\n    entry_script: score.py\n    environment: {requirements: requirements.txt}\n")
    assert error_of() == f"{project_dir / 'requirements.txt'}: line 2, column 13: not valid UTF-8 (byte 0xe9); save the file as UTF-8"


@pytest.mark.parametrize(
    ("setting", "where"),
    [
        ("health_timeout_s: .inf", "health_timeout_s"),
        ("profile: {duration_s: .inf}", "profile.duration_s"),
        ("resources: {cpu: .nan}", "resources.cpu"),
        ("gates: {latency_p95_ms: .inf}", "gates.latency_p95_ms"),
    ],
)
def test_infinite_and_nan_numbers_are_refused(project_dir: Path, setting: str, where: str) -> None:
    write(project_dir, f"deployments:\n  d:\n    entry_script: score.py\n    {setting}\n")
    assert error_of().startswith(f"mldeploy.yaml: deployments.d.{where}: expected a finite number, got ")


def test_invalid_utf8_in_azure_and_conda_files_is_a_one_line_error(project_dir: Path) -> None:
    (project_dir / "environment.yml").write_bytes(b"name: svc\ndependencies:\n  - pip:\n    - jobl\xefib\n")
    write(project_dir, "deployments:\n  d:\n    entry_script: score.py\n    environment: {conda_file: environment.yml}\n")
    assert error_of() == f"{project_dir / 'environment.yml'}: line 4, column 11: not valid UTF-8 (byte 0xef); save the file as UTF-8"
    (project_dir / "inferenceconfig.json").write_bytes(b'{"entryScript": "sc\xffore.py"}')
    write(project_dir, "deployments:\n  d:\n    inference_config: inferenceconfig.json\n")
    assert error_of() == "inferenceconfig.json: line 1, column 20: not valid UTF-8 (byte 0xff); save the file as UTF-8"
