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

