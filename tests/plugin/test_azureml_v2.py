"""`pytest --mldeploy` on Azure ML v2 deployment files as they are: collection, claims, the example, the export."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "azureml-v2"
DIABETES = REPO / "example_projects" / "sklearn-diabetes"
QUICK = ["-k", "not profile"]


def copy_example(pytester: pytest.Pytester) -> Path:
    target = pytester.path / EXAMPLE.name
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".mldeploy*", "__pycache__"))
    return target


def test_a_folder_of_v2_files_is_collected_by_deployment_name(pytester: pytest.Pytester) -> None:
    project = copy_example(pytester)
    result = pytester.runpytest_subprocess(str(project), "--mldeploy", "--collect-only", "-q")
    result.assert_outcomes()
    lines = [line for line in result.outlines if "::" in line]
    assert "azureml-v2/managed/sample/blue-deployment.yml::blue::health" in lines
    assert "azureml-v2/managed/sample/green-deployment.yml::green::profile" in lines
    assert not any("endpoint.yml" in line or "conda" in line for line in lines)  # endpoint and conda files are not deployments


def test_a_v2_file_named_by_mldeploy_yaml_is_collected_once_through_it(pytester: pytest.Pytester) -> None:
    project = copy_example(pytester)
    sample = project / "managed" / "sample"
    (sample / "mldeploy.yaml").write_text(textwrap.dedent("""\
        deployments:
          blue-gated:
            online_deployment: blue-deployment.yml
            gates: {latency_p95_ms: 500}
        allowed_outside_paths: [../..]
        """))
    result = pytester.runpytest_subprocess(str(project), "--mldeploy", "--collect-only", "-q")
    lines = [line for line in result.outlines if "::health" in line]
    assert sorted(lines) == [
        "azureml-v2/managed/sample/green-deployment.yml::green::health",
        "azureml-v2/managed/sample/mldeploy.yaml::blue-gated::health",
    ]


def test_mldeploy_config_takes_a_v2_file(pytester: pytest.Pytester) -> None:
    project = copy_example(pytester)
    config = project / "managed" / "sample" / "green-deployment.yml"
    result = pytester.runpytest_subprocess("--mldeploy", "--mldeploy-config", str(config), "--collect-only", "-q")
    lines = [line for line in result.outlines if "::" in line]
    assert lines and all("green-deployment.yml::green::" in line for line in lines)


def test_a_broken_v2_file_is_one_readable_error(pytester: pytest.Pytester) -> None:
    project = copy_example(pytester)
    blue = project / "managed" / "sample" / "blue-deployment.yml"
    blue.write_text(blue.read_text().replace("instance_count: 1", "instance_count: 1\napp_insight_enabled: true"))
    result = pytester.runpytest_subprocess(str(blue), "--mldeploy", "-q")
    result.stdout.fnmatch_lines(["*blue-deployment.yml: app_insight_enabled: unknown key (did you mean 'app_insights_enabled'?)*"])
    assert "Traceback" not in result.stdout.str()


def test_the_example_passes_on_the_process_target(pytester: pytest.Pytester) -> None:
    project = copy_example(pytester)
    result = pytester.runpytest_subprocess(str(project), "--mldeploy", "--mldeploy-target", "process", "-p", "no:cacheprovider",
                                           *QUICK, timeout=900)
    result.assert_outcomes(passed=7, skipped=3, warnings=7)  # blue's plain run(raw) answers malformed input 500: warnings
    result.stdout.fnmatch_lines(["*blue *process*Healthy*", "*green *process*Healthy*"])


def test_the_diabetes_example_exported_to_v2_passes_in_its_export_folder(pytester: pytest.Pytester) -> None:
    from pytest_mldeploy.cli import main

    out = pytester.path / "exported"
    assert main(["export", "azureml-v2", "diabetes", "--config", str(DIABETES / "mldeploy.yaml"), "--out", str(out), "--no-profile"]) == 0
    result = pytester.runpytest_subprocess(str(out), "--mldeploy", "--mldeploy-target", "process", "-p", "no:cacheprovider",
                                           *QUICK, timeout=900)
    result.assert_outcomes(passed=4, skipped=1)
