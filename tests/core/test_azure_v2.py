"""Azure ML v2 online deployment YAML read as written: keys, paths, endpoint, references, errors."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from pytest_mldeploy.core import azure_v2
from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.layout import lay_out_app
from pytest_mldeploy.core.registry import Registry
from pytest_mldeploy.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "azureml-v2"

DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: my-endpoint
model:
  path: ../../model-1/model/
code_configuration:
  code: ../../model-1/onlinescoring/
  scoring_script: score.py
environment:
  conda_file: ../../model-1/environment/conda.yml
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest
instance_type: Standard_DS3_v2
instance_count: 1
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def no_base_image_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLDEPLOY_BASE_IMAGE", raising=False)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """Azure's sample shape: managed/sample/{endpoint,blue-deployment}.yml beside ../../model-1/."""
    top = tmp_path / "online"
    write(top / "model-1" / "model" / "sklearn_regression_model.pkl", "not really a pickle")
    write(top / "model-1" / "onlinescoring" / "score.py", "def init():\n    pass\n\ndef run(raw):\n    return raw\n")
    write(top / "model-1" / "environment" / "conda.yml",
          "name: e\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - joblib\n")
    write(top / "managed" / "sample" / "endpoint.yml",
          "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json\n"
          "name: my-endpoint\nauth_mode: key\ntraffic:\n  blue: 90\n  green: 10\n")
    write(top / "managed" / "sample" / "blue-deployment.yml", DEPLOYMENT)
    return top / "managed" / "sample"


def deployment_of(path: Path):
    project = load_project(path)
    assert len(project.deployments) == 1
    return project, next(iter(project.deployments.values()))


def test_the_sample_shape_is_read_as_azure_reads_it(sample: Path) -> None:
    project, d = deployment_of(sample / "blue-deployment.yml")
    top = sample.parent.parent
    assert d.name == "blue"
    assert d.source_directory == top / "model-1" / "onlinescoring"
    assert d.entry_script == "score.py"
    assert d.models[0].path == top / "model-1" / "model"
    assert d.environment.conda_file == top / "model-1" / "environment" / "conda.yml"
    assert d.environment.requirements() == ["joblib"]
    assert d.base_image == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
    assert (d.resources.cpu, d.resources.memory_gb) == (4.0, 14.0)  # Standard_DS3_v2
    assert d.instance_type == "Standard_DS3_v2"
    assert d.scoring_timeout_ms == 5000  # Azure's default request_timeout_ms
    assert d.max_concurrent_requests == 1  # Azure's default max_concurrent_requests_per_instance
    assert d.health_timeout_s == 310  # liveness: initial_delay 10 + period 10 x failure_threshold 30
    assert d.auth.enabled and len(d.auth.keys) == 2
    assert d.traffic_percent == 90
    assert d.notices() == []
    # ../../model-1 leaves the deployment's folder but stays inside the project root.
    assert project.root == top
    assert project.registry_dir == sample / ".mldeploy"


def test_the_model_folder_name_is_kept_under_azureml_model_dir(sample: Path, tmp_path: Path) -> None:
    project, d = deployment_of(sample / "blue-deployment.yml")
    registry = Registry(project.registry_dir)
    layout = lay_out_app(d, registry.register_deployment_models(d), registry, tmp_path / "app")
    model_dir = Path(layout.server_env()["AZUREML_MODEL_DIR"])
    assert (model_dir / "model" / "sklearn_regression_model.pkl").read_text() == "not really a pickle"


def test_a_single_file_model_sits_directly_in_azureml_model_dir(sample: Path, tmp_path: Path) -> None:
    text = DEPLOYMENT.replace("path: ../../model-1/model/", "path: ../../model-1/model/sklearn_regression_model.pkl")
    path = write(sample / "blue-deployment.yml", text)
    project, d = deployment_of(path)
    registry = Registry(project.registry_dir)
    layout = lay_out_app(d, registry.register_deployment_models(d), registry, tmp_path / "app")
    assert (Path(layout.server_env()["AZUREML_MODEL_DIR"]) / "sklearn_regression_model.pkl").is_file()


def test_request_settings_probes_and_variables(sample: Path) -> None:
    text = DEPLOYMENT + textwrap.dedent("""\
        request_settings:
          request_timeout_ms: 3000
          max_concurrent_requests_per_instance: 4
        liveness_probe:
          initial_delay: 5
          period: 2
          failure_threshold: 3
        environment_variables:
          WORKER_COUNT: 2
          MY_FLAG: true
        """)
    _, d = deployment_of(write(sample / "blue-deployment.yml", text))
    assert d.scoring_timeout_ms == 3000
    assert d.max_concurrent_requests == 4
    assert d.health_timeout_s == 11  # 5 + 2 x 3
    assert d.workers == 2
    assert d.environment.variables == {"MY_FLAG": "true"}


def test_cloud_only_keys_are_one_notice_each(sample: Path) -> None:
    text = DEPLOYMENT + "app_insights_enabled: true\negress_public_network_access: disabled\ninstance_count: 3\n"
    text = text.replace("instance_count: 1\n", "")
    _, d = deployment_of(write(sample / "blue-deployment.yml", text))
    notices = d.notices()
    assert any(n.startswith("app_insights_enabled: only matters in the cloud") for n in notices)
    assert any(n.startswith("egress_public_network_access: only matters in the cloud") for n in notices)
    assert any(n.startswith("instance_count 3: one instance runs here") for n in notices)


def test_an_unknown_key_is_one_line_with_a_suggestion(sample: Path) -> None:
    path = write(sample / "blue-deployment.yml", DEPLOYMENT.replace("instance_count: 1", "instance_cuont: 1"))
    with pytest.raises(ConfigError) as err:
        load_project(path)
    assert str(err.value).endswith("blue-deployment.yml: instance_cuont: unknown key (did you mean 'instance_count'?)")
    assert "\n" not in str(err.value)


def test_an_unknown_nested_key_names_its_place(sample: Path) -> None:
    path = write(sample / "blue-deployment.yml", DEPLOYMENT + "request_settings:\n  request_timeout: 10\n")
    with pytest.raises(ConfigError, match=r"request_settings\.request_timeout: unknown key \(did you mean 'request_timeout_ms'\?\)"):
        load_project(path)


def test_an_unknown_vm_size_is_an_error_with_a_suggestion(sample: Path) -> None:
    path = write(sample / "blue-deployment.yml", DEPLOYMENT.replace("Standard_DS3_v2", "Standard_DS3v2"))
    with pytest.raises(ConfigError, match=r"instance_type: Standard_DS3v2 is not a size .*did you mean 'Standard_DS3_v2'"):
        load_project(path)


def test_a_missing_path_names_the_key_and_where_it_looked(sample: Path) -> None:
    path = write(sample / "blue-deployment.yml", DEPLOYMENT.replace("../../model-1/model/", "../../model-9/model/"))
    with pytest.raises(ConfigError, match=r"blue-deployment.yml: model.path: \.\./\.\./model-9/model/ does not exist"):
        load_project(path)


def test_aml_token_is_key_auth_and_a_missing_endpoint_defaults_to_key(sample: Path) -> None:
    write(sample / "endpoint.yml", "name: my-endpoint\nauth_mode: aml_token\n")
    _, d = deployment_of(sample / "blue-deployment.yml")
    assert d.auth.enabled and d.traffic_percent is None
    (sample / "endpoint.yml").unlink()
    _, d = deployment_of(sample / "blue-deployment.yml")
    assert d.auth.enabled
    assert d.notices() == ["no endpoint file with name: my-endpoint beside it; key auth, Azure's default"]


def test_a_bad_endpoint_file_is_named_in_the_error(sample: Path) -> None:
    write(sample / "endpoint.yml", "name: my-endpoint\nauth_mode: key\ntrafic: {blue: 100}\n")
    with pytest.raises(ConfigError, match=r"endpoint.yml: trafic: unknown key \(did you mean 'traffic'\?\)"):
        load_project(sample / "blue-deployment.yml")


def test_a_registered_model_reference_resolves_against_the_local_registry(sample: Path) -> None:
    path = write(sample / "blue-deployment-with-registered-assets.yml",
                 DEPLOYMENT.replace("model:\n  path: ../../model-1/model/\n", "model: azureml:my-model:1\n"))
    with pytest.raises(ConfigError) as err:
        load_project(path)
    message = str(err.value)
    assert "model: azureml:my-model:1 is not in the local registry" in message
    assert f"mldeploy models --registry {sample / '.mldeploy'} register --name my-model --version 1 --path PATH" in message
    registry = Registry(sample / ".mldeploy")
    registered = registry.register("my-model", sample.parent.parent / "model-1" / "model", version=1)
    project, d = deployment_of(path)
    assert d.name == "blue-deployment-with-registered-assets.blue"  # a variant of blue: named by file and deployment
    assert d.models[0].path is None and (d.models[0].name, d.models[0].version) == ("my-model", 1)
    assert [m.sha256 for m in registry.register_deployment_models(d)] == [registered.sha256]


def test_a_registered_environment_reference_reads_a_local_environment_file(sample: Path) -> None:
    write(sample / "environment.yml", "$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\n"
          "name: my-env\nversion: 1\nimage: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest\n"
          "conda_file: ../../model-1/environment/conda.yml\n")
    path = write(sample / "blue-deployment.yml", DEPLOYMENT.replace(
        "environment:\n  conda_file: ../../model-1/environment/conda.yml\n"
        "  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest\n", "environment: azureml:my-env:1\n"))
    _, d = deployment_of(path)
    assert d.environment.conda_file == sample.parent.parent / "model-1" / "environment" / "conda.yml"
    path.write_text(path.read_text().replace("azureml:my-env:1", "azureml:other-env:2"))
    with pytest.raises(ConfigError, match=r"environment: azureml:other-env:2 has no local environment file; write one beside it"):
        load_project(path)


def test_a_curated_environment_maps_to_its_documented_packages(sample: Path) -> None:
    curated = "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"
    env_block = ("environment:\n  conda_file: ../../model-1/environment/conda.yml\n"
                 "  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest\n")
    path = write(sample / "blue-deployment-with-curated-env.yml", DEPLOYMENT.replace(env_block, f"environment: {curated}\n"))
    _, d = deployment_of(path)
    assert "scikit-learn~=1.5.0" in d.environment.requirements()
    assert any("curated sklearn-1.5" in n for n in d.notices())
    path.write_text(path.read_text().replace("sklearn-1.5", "tensorflow-2.99"))
    with pytest.raises(ConfigError, match=r"curated environment 'tensorflow-2.99' is not one mldeploy knows"):
        load_project(path)


def test_kubernetes_resources_give_the_limits(sample: Path) -> None:
    text = DEPLOYMENT.replace("managedOnlineDeployment", "kubernetesOnlineDeployment").replace(
        "instance_type: Standard_DS3_v2\n", "resources:\n  requests:\n    cpu: 100m\n    memory: 0.5Gi\n"
        "  limits:\n    cpu: 500m\n    memory: 1536Mi\n")
    _, d = deployment_of(write(sample / "blue-deployment.yml", text))
    assert (d.resources.cpu, d.resources.memory_gb) == (0.5, 1.5)


def test_a_kubernetes_instance_type_without_resources_asks_for_them(sample: Path) -> None:
    text = DEPLOYMENT.replace("managedOnlineDeployment", "kubernetesOnlineDeployment").replace(
        "Standard_DS3_v2", "defaultinstancetype")
    with pytest.raises(ConfigError, match=r"instance_type: defaultinstancetype is an instance type of your Kubernetes cluster.*resources.limits"):
        load_project(write(sample / "blue-deployment.yml", text))


def test_variants_of_one_deployment_do_not_collide() -> None:
    assert azure_v2.deployment_key(Path("blue-deployment.yml"), "blue") == "blue"
    assert azure_v2.deployment_key(Path("blue.yml"), "blue") == "blue"
    assert azure_v2.deployment_key(Path("blue-deployment-with-curated-env.yml"), "blue") == "blue-deployment-with-curated-env.blue"


def test_what_counts_as_a_v2_deployment() -> None:
    assert azure_v2.is_deployment_data({"$schema": "https://azuremlschemas.azureedge.net/latest/kubernetesOnlineDeployment.schema.json"})
    assert azure_v2.is_deployment_data({"name": "b", "endpoint_name": "e", "code_configuration": {}})
    assert not azure_v2.is_deployment_data({"name": "b", "endpoint_name": "e"})
    assert not azure_v2.is_deployment_data({"$schema": "https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json"})
    assert not azure_v2.is_deployment_data(["a list"])


def test_mldeploy_yaml_references_a_v2_file_and_adds_gates(sample: Path) -> None:
    write(sample / "mldeploy.yaml", """\
        deployments:
          blue:
            online_deployment: blue-deployment.yml
            gates: {latency_p95_ms: 250}
            profile: {duration_s: 5}
            base_image: mldeploy/base:bookworm-py3.11
        allowed_outside_paths: [../..]
        """)
    project = load_project(sample / "mldeploy.yaml")
    d = project.deployments["blue"]
    assert d.gates.latency_p95_ms == 250 and d.profile.duration_s == 5
    assert d.entry_script == "score.py" and d.resources.cpu == 4.0
    assert d.online_deployment == sample / "blue-deployment.yml"
    assert d.base_image == "mldeploy/base:bookworm-py3.11"  # over the v2 environment's image


def test_mldeploy_yaml_keeps_a_v2_files_paths_inside_its_project(sample: Path) -> None:
    write(sample / "mldeploy.yaml", "deployments:\n  blue:\n    online_deployment: blue-deployment.yml\n")
    with pytest.raises(ConfigError) as err:
        load_project(sample / "mldeploy.yaml")
    assert "blue-deployment.yml: code_configuration.code: ../../model-1/onlinescoring/ is outside the project" in str(err.value)
    assert "allowed_outside_paths" in str(err.value) and "\n" not in str(err.value)


def test_an_absolute_path_outside_a_v2_project_is_refused(sample: Path, tmp_path: Path) -> None:
    elsewhere = write(tmp_path / "elsewhere" / "m.pkl", "x")
    path = write(sample / "blue-deployment.yml", DEPLOYMENT.replace("../../model-1/model/", str(elsewhere)))
    with pytest.raises(ConfigError, match=rf"blue-deployment.yml: model.path: {elsewhere} is outside the project"):
        load_project(path)


def test_mldeploy_yaml_may_not_set_what_the_v2_file_replaces(sample: Path) -> None:
    write(sample / "mldeploy.yaml", """\
        deployments:
          blue:
            online_deployment: blue-deployment.yml
            entry_script: other.py
        """)
    with pytest.raises(ConfigError, match=r"deployments.blue: online_deployment replaces entry_script; remove it or the online_deployment"):
        load_project(sample / "mldeploy.yaml")


def test_the_example_project_loads_both_deployments() -> None:
    blue = load_project(EXAMPLE / "managed" / "sample" / "blue-deployment.yml").deployments["blue"]
    green = load_project(EXAMPLE / "managed" / "sample" / "green-deployment.yml").deployments["green"]
    assert blue.traffic_percent == 100 and green.traffic_percent == 0
    assert green.instance_type == "Standard_DS3_v2" and green.scoring_timeout_ms == 3000
    assert blue.models[0].name != green.models[0].name  # two model/ folders: two registry names
