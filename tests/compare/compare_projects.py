"""Projects the compare tests build in a temporary folder: the example's diabetes service and variants of it.

Every candidate is the example's `score.py` with one planted change; all share the model, the
sample requests and the environment, so any difference the comparison finds is the planted one.
"""
from __future__ import annotations

import shutil
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "example_projects" / "sklearn-diabetes"

#: score.py text replacements that plant one change each.
VARIANTS = {
    "same": [],
    "scaled": [("return model.predict(data).tolist()", "return model.predict(np.asarray(data) * 1.5).tolist()")],
    "renamed": [('@input_schema("data",', '@input_schema("features",'), ("def run(data):", "def run(features):"),
                ("return model.predict(data).tolist()", "return model.predict(features).tolist()")],
    "slow": [("def run(data):\n", "def run(data):\n    import time\n\n    time.sleep(0.02)\n")],
    "constant": [("return model.predict(data).tolist()", "return [0.5, 0.5]")],
}

#: Short rounds, and latency allowed to double plus 10 ms: a 20 ms sleep per request is far past that,
#: and a shared 2-core machine's noise (an unchanged candidate's rounds have differed 2x) is not.
COMPARE_SETTINGS = """compare:
  answers: {examples: 10}
  speed: {rounds: 8, round_s: 1.0, warmup_s: 0.5, concurrency: 2, p95_ratio: 2.0, p95_slack_ms: 10, throughput_ratio: 0.3}
"""


def variant_script(name: str) -> str:
    """The example's score.py with the variant's change planted (checked: each replacement happens)."""
    text = (EXAMPLE / "score.py").read_text()
    for old, new in VARIANTS[name]:
        assert old in text, f"variant {name}: {old!r} is not in the example's score.py any more"
        text = text.replace(old, new)
    return text


def diabetes_project(folder: Path, variants: list[str], *, speed: bool = True) -> Path:
    """The example project with a deployment `baseline` (the example as it is) and one per variant
    (`candidate-NAME`); returns the mldeploy.yaml path."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(EXAMPLE / "models", folder / "models", dirs_exist_ok=True)
    shutil.copy2(EXAMPLE / "sample_requests.txt", folder / "sample_requests.txt")
    (folder / "score.py").write_text((EXAMPLE / "score.py").read_text())
    lines = ["defaults:", "  models: [{name: sklearn_regression_model, path: models/sklearn_regression_model.pkl}]",
             "  environment: {pip: [scikit-learn==1.9.1, joblib, \"inference-schema[numpy-support]\"]}",
             "  resources: {cpu: 1, memory_gb: 1}", "  profile: {requests: sample_requests.txt}",
             "deployments:", "  baseline: {entry_script: score.py}"]
    for name in variants:
        (folder / f"score_{name}.py").write_text(variant_script(name))
        lines.append(f"  candidate-{name}: {{entry_script: score_{name}.py}}")
    settings = COMPARE_SETTINGS if speed else COMPARE_SETTINGS.replace("throughput_ratio: 0.3}", "throughput_ratio: 0.3, enabled: false}")
    (folder / "mldeploy.yaml").write_text("\n".join(lines) + "\n" + settings)
    return folder / "mldeploy.yaml"


BLUE_SCORE = (EXAMPLE / "score.py").read_text()
GREEN_SCORE = '''"""Green: answers the same whatever it is sent (no model behind it yet)."""
import json


def init():
    pass


def run(raw_data):
    return [0.5, 0.5]
'''

DEPLOYMENT = """$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: {name}
endpoint_name: my-endpoint
model:
  path: ../../model-{n}/model/
code_configuration:
  code: ../../model-{n}/onlinescoring/
  scoring_script: score.py
environment:
  conda_file: ../../model-{n}/environment/conda.yaml
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest
instance_type: Standard_DS3_v2
instance_count: 1
"""

CONDA = """name: model-env
channels: [conda-forge]
dependencies:
  - python=3.11
  - numpy
  - pip
  - scikit-learn=1.9.1
  - pip:
      - joblib
      - inference-schema[numpy-support]
"""


#: Indented over several lines, as Azure's samples write their request files.
SAMPLE_REQUEST = """{"data": [
    [0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.01],
    [-0.05, -0.04, -0.01, -0.03, 0.01, 0.02, 0.07, -0.03, -0.04, -0.09]
]}
"""


#: Azure's own blue score.py: no input schema, the request parsed by hand.
AZURE_BLUE_SCORE = '''"""Blue as Azure's sample writes it: no inference_schema decorators."""
import json
import os

import joblib
import numpy


def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl"))


def run(raw_data):
    data = numpy.array(json.loads(raw_data)["data"])
    return model.predict(data).tolist()
'''


def rollout_folder(online: Path, blue_score: str) -> Path:
    """A folder shaped like Azure's safe-rollout sample: endpoints/online/managed/saferollout/{endpoint,blue-deployment,
    green-deployment}.yml beside model-1 (blue: the diabetes regression) and model-2 (green: a constant), each
    model-N with its sample-request.json beside the onlinescoring code folder."""
    for n, score in ((1, blue_score), (2, GREEN_SCORE)):
        model = online / f"model-{n}"
        (model / "model").mkdir(parents=True)
        shutil.copy2(EXAMPLE / "models" / "sklearn_regression_model.pkl", model / "model")
        (model / "onlinescoring").mkdir()
        (model / "onlinescoring" / "score.py").write_text(score.replace('os.getenv("AZUREML_MODEL_DIR"), ', 'os.getenv("AZUREML_MODEL_DIR"), "model", '))
        (model / "environment").mkdir()
        (model / "environment" / "conda.yaml").write_text(CONDA)
        (model / "sample-request.json").write_text(SAMPLE_REQUEST)
    folder = online / "managed" / "saferollout"
    folder.mkdir(parents=True)
    (folder / "endpoint.yml").write_text("$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json\n"
                                         "name: my-endpoint\nauth_mode: key\n")
    (folder / "blue-deployment.yml").write_text(DEPLOYMENT.format(name="blue", n=1))
    (folder / "green-deployment.yml").write_text(DEPLOYMENT.format(name="green", n=2))
    return folder
