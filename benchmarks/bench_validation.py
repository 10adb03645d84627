"""What validating each request against the published ServiceInput costs the scoring server.

For each entry script (the example's numpy input with 2 and 100 rows, and the test scripts for
pandas records, a Python dict and Azure's nested Inputs/GlobalParameters shape), one subprocess
loads the script the way the server does and times, per request:
the validator alone on the parsed body, and `UserScript.arguments()` (JSON parsing, validation,
inference_schema's deserialisation) with and without the validator. The difference is the cost
of "what it publishes is what it enforces"; the server's whole CPU time per request is in
`results/server.json` (bench_server.py), which this report sets the validation beside.

    python benchmarks/bench_validation.py [--seconds 1.0] [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

NAME = "validation"
TITLE = "Request validation against the published ServiceInput: cost per request (in-process, one core)"
SCRIPTS = c.REPO_ROOT / "tests" / "server" / "scripts"

CASES: dict[str, tuple[Path, Optional[Callable[[dict], dict]]]] = {
    "numpy 2 rows (example)": (c.EXAMPLE_DIR / "score.py", lambda ex: {"data": ex["data"] * 2}),
    "numpy 100 rows (example)": (c.EXAMPLE_DIR / "score.py", lambda ex: {"data": ex["data"] * 100}),
    "pandas records, 2 rows x 10 columns": (SCRIPTS / "pandas_records.py",
                                            lambda ex: {"data": ex["data"] * 2}),
    "Python dict, 11 keys": (SCRIPTS / "dict_typed.py", None),
    "nested Inputs + GlobalParameters": (SCRIPTS / "nested_inputs.py", None),
}


def _time_per_call(fns: list[Callable[[], Any]], seconds: float, rounds: int) -> list[float]:
    """Median over rounds of CPU microseconds per call, for each fn; rounds alternate between the fns."""
    for fn in fns:
        for _ in range(200):
            fn()
    results: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for index, fn in enumerate(fns):
            # CPU time of this thread, not wall time: steadier while other work shares the core.
            n, start, cpu_start = 0, time.perf_counter(), time.thread_time()
            while True:
                for _ in range(100):
                    fn()
                n += 100
                if time.perf_counter() - start >= seconds:
                    break
            results[index].append((time.thread_time() - cpu_start) / n * 1e6)
    return [statistics.median(r) for r in results]


def measure(case: str, seconds: float, rounds: int) -> dict[str, Any]:
    """Run inside the subprocess: load the case's script as the server does and time it."""
    from pytest_mldeploy.server.settings import load_settings
    from pytest_mldeploy.server.user_script import UserScript

    script_path, grow = CASES[case]
    work = Path(tempfile.mkdtemp(prefix="bench-validation-"))
    try:
        src = work / "app" / "src"
        model_dir = work / "app" / "azureml-models" / "sklearn_regression_model" / "1"
        src.mkdir(parents=True)
        model_dir.mkdir(parents=True)
        shutil.copy2(script_path, src / "score.py")
        shutil.copy2(c.EXAMPLE_DIR / "models" / "sklearn_regression_model.pkl", model_dir)
        settings = load_settings({"AML_APP_ROOT": str(work / "app"), "AZUREML_SOURCE_DIRECTORY": "src",
                                  "AZUREML_ENTRY_SCRIPT": "score.py", "AZUREML_MODEL_DIR": str(model_dir)})
        script = UserScript(settings)
        script.load()
        script.init()
        example = script.input_schema()["example"]
        body_value = grow(example) if grow else example
        body = json.dumps(body_value).encode()
        headers = [(b"content-type", b"application/json")]
        validator = script._validator
        assert validator is not None and validator.first_violation(body_value) is None

        def arguments() -> Any:
            return script.arguments("POST", "/score", b"", headers, body)

        def arguments_unvalidated() -> Any:
            script._validator = None
            try:
                return script.arguments("POST", "/score", b"", headers, body)
            finally:
                script._validator = validator

        with_validation, without_validation, validate_only, parse_only = _time_per_call(
            [arguments, arguments_unvalidated, lambda: validator.first_violation(json.loads(body)),
             lambda: json.loads(body)], seconds, rounds)
        return {"case": case, "body_bytes": len(body), "validate_us": validate_only - parse_only,
                "arguments_us": with_validation, "arguments_without_us": without_validation}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _server_cpu_us() -> Optional[float]:
    """Our server's CPU µs per 2-row request from bench_server.py's last run (None when it has not run)."""
    server = c.load_results("server")
    runs = ((server or {}).get("data") or {}).get("cpu_us_per_request", {}).get("ours")
    return statistics.median(runs) if runs else None


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per timing round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(measure(args.case, args.seconds, args.rounds)))
        return

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(c.REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    rows, data, missing = [], [], []
    for case in CASES:
        command = c.pinned([sys.executable, __file__, "--case", case, "--seconds", str(args.seconds),
                            "--rounds", str(args.rounds)], [c.SERVER_CORE])
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            missing.append(f"{case}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'}")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        data.append(result)
        added = result["arguments_us"] - result["arguments_without_us"]
        rows.append([case, result["body_bytes"], c.fmt(result["validate_us"], 1), c.fmt(result["arguments_without_us"], 1),
                     c.fmt(result["arguments_us"], 1), c.fmt(added, 1)])
    notes = ["validate = validator.first_violation() on the parsed body (JSON parsing subtracted); "
             "prepare = UserScript.arguments(): parse + validate + inference_schema deserialisation",
             "times are medians over rounds of CPU microseconds per request, one process pinned to core 0; "
             "other engineers' work shares the machine, so compare columns of one run, not runs"]
    server_cpu = _server_cpu_us()
    ratios = []
    if server_cpu is not None:
        notes.append(f"the whole server spends {server_cpu:.0f} µs of CPU per 2-row request (median of this "
                     f"round's runs in results/server.json)")
        two_rows = next((r for r in data if r["case"] == "numpy 2 rows (example)"), None)
        if two_rows is not None:
            added = two_rows["arguments_us"] - two_rows["arguments_without_us"]
            ratios.append(c.ratio_entry("validation / server CPU per 2-row request", added / server_cpu,
                                        "(information)", None, digits=3))
    c.report_and_save(NAME, TITLE, ["input", "body bytes", "validate us", "prepare us (no validation)",
                                    "prepare us (validated)", "added us"], rows, ratios, missing=missing, notes=notes,
                      data={"cases": data})


if __name__ == "__main__":
    main()
