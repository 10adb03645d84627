"""The `mldeploy` command, run as a user runs it: a real process, real services on 127.0.0.1."""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import psutil
import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"
ROW = [[0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.01]]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    target = tmp_path / "sklearn-diabetes"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__"))
    return target


def mldeploy(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest_mldeploy.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def uri_lines(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines() if line.startswith(("scoring_uri: ", "swagger_uri: ")))


def test_serve_prints_uris_when_healthy_and_stops_on_sigterm(project: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "pytest_mldeploy.cli", "serve", "--config", str(project / "mldeploy.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline().strip()
        second = proc.stdout.readline().strip()
        assert first.startswith("scoring_uri: http://127.0.0.1:"), proc.stderr.read() if not first else first
        assert second.startswith("swagger_uri: http://127.0.0.1:")
        scoring_uri = first.split(": ", 1)[1]
        response = requests.post(scoring_uri, json={"data": ROW}, timeout=10)
        assert response.status_code == 200 and len(response.json()) == 1
        server_pids = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        assert server_pids
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        time.sleep(0.2)
        assert not [pid for pid in server_pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
        with pytest.raises(requests.ConnectionError):
            requests.get(scoring_uri.rsplit("/", 1)[0] + "/", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


TALKATIVE_RUN = """
@input_schema("data", NumpyParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    print(f"scoring {len(data)} row(s)", flush=True)
    if (data > 1e6).any():
        raise ValueError(f"feature value {data.max()} is beyond the trained range")
    return model.predict(data).tolist()
"""


def talkative(project: Path) -> Path:
    """The example with a run() that prints each call and raises on a value above 1e6 (a 500)."""
    score = project / "score.py"
    text = score.read_text()
    score.write_text(text[: text.index('@input_schema("data"')] + TALKATIVE_RUN)
    return project


class Serving:
    """`mldeploy serve` as a user starts it; its stdout lines are read as they come."""

    def __init__(self, project: Path, *extra: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "pytest_mldeploy.cli", "serve", *extra], cwd=project,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, wanted: Callable[[str], bool], timeout: float = 600) -> str:
        """The first stdout line (from now on) that `wanted` accepts; fails with all lines seen when none comes."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                line = None
            if line is None:
                stderr = self.proc.stderr.read() if self.proc.poll() is not None else ""  # type: ignore[union-attr]
                pytest.fail("serve printed no such line; stdout:\n" + "\n".join(self.seen) + "\nstderr:\n" + stderr)
            self.seen.append(line)
            if wanted(line):
                return line

    def value(self, key: str) -> str:
        return self.wait_for(lambda line: line.startswith(key + ": ")).split(": ", 1)[1]

    def stop(self) -> str:
        """SIGTERM, as Ctrl-C would; returns stderr."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0
        return self.proc.stderr.read()  # type: ignore[union-attr]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def check_serve_streams_and_keeps_the_log(project: Path, target: str) -> None:
    serving = Serving(talkative(project), "--target", target)
    try:
        scoring_uri = serving.value("scoring_uri")
        log_path = Path(serving.value("log_path"))
        assert log_path == project / ".mldeploy" / "services" / "diabetes" / "service.log"
        serving.wait_for(lambda line: "init() done" in line)  # the server's startup, streamed from its start
        assert requests.post(scoring_uri, json={"data": ROW}, timeout=30).status_code == 200
        serving.wait_for(lambda line: line == "scoring 1 row(s)")
        failed = requests.post(scoring_uri, json={"data": [[2e6] * 10]}, timeout=30)
        assert failed.status_code == 500 and "Check the logs" in failed.text
        serving.wait_for(lambda line: "ValueError: feature value 2000000.0 is beyond the trained range" in line)
        # While it serves, `mldeploy logs` finds it, and `deploy`/`delete` leave it alone.
        running = mldeploy("logs", "diabetes", cwd=project)
        assert running.returncode == 0, running.stderr
        assert "scoring 1 row(s)" in running.stdout and "ValueError: feature value 2000000.0" in running.stdout
        assert "not running" not in running.stderr
        for command in ("deploy", "delete"):
            refused = mldeploy(command, "diabetes", "--target", target, cwd=project) if command == "deploy" \
                else mldeploy(command, "diabetes", cwd=project)
            assert refused.returncode == 2, refused.stdout
            assert "is being served" in refused.stderr or "is already running" in refused.stderr
            assert "Ctrl-C" in refused.stderr
        assert requests.post(scoring_uri, json={"data": ROW}, timeout=30).status_code == 200
        stderr = serving.stop()
    finally:
        serving.kill()
    assert "mldeploy logs diabetes" in stderr
    # After it stopped: the last log is still there, and says so.
    last = mldeploy("logs", "diabetes", cwd=project)
    assert last.returncode == 0, last.stderr
    assert "ValueError: feature value 2000000.0 is beyond the trained range" in last.stdout
    assert "Traceback (most recent call last)" in last.stdout
    assert "'diabetes' is not running" in last.stderr
    assert log_path.read_text().count("scoring 1 row(s)") == 3  # every request, the failed one too
    tail = mldeploy("logs", "diabetes", "--tail", "1", cwd=project)
    assert len(tail.stdout.splitlines()) == 1
    # A new serve starts a fresh log.
    again = Serving(project, "--target", target)
    try:
        again.value("scoring_uri")
        again.stop()
    finally:
        again.kill()
    assert "ValueError" not in log_path.read_text() and "init() done" in log_path.read_text()


def test_serve_streams_the_log_and_logs_finds_it_running_and_stopped(project: Path) -> None:
    check_serve_streams_and_keeps_the_log(project, "process")


@pytest.mark.docker
def test_serve_on_docker_streams_the_log_and_logs_finds_it_running_and_stopped(project: Path) -> None:
    check_serve_streams_and_keeps_the_log(project, "docker")


def test_serve_refuses_a_deployment_that_deploy_left_running(project: Path) -> None:
    deployed = mldeploy("deploy", "diabetes", "--target", "process", cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    try:
        refused = mldeploy("serve", "diabetes", cwd=project)
        assert refused.returncode == 2
        assert "cannot serve 'diabetes'" in refused.stderr and "`mldeploy delete diabetes` first" in refused.stderr
        assert requests.post(uri_lines(deployed.stdout)["scoring_uri"], json={"data": ROW}, timeout=10).status_code == 200
    finally:
        assert mldeploy("delete", "diabetes", cwd=project).returncode == 0
    assert not (project / ".mldeploy" / "services" / "diabetes").exists()


def test_a_serve_that_cannot_start_keeps_its_log(project: Path) -> None:
    score = project / "score.py"
    score.write_text(score.read_text().replace("    model = joblib.load(model_path)",
                                               "    raise RuntimeError('init broke on purpose')"))
    result = mldeploy("serve", "diabetes", cwd=project)
    assert result.returncode == 2
    assert "RuntimeError: init broke on purpose" in result.stderr
    log = project / ".mldeploy" / "services" / "diabetes" / "service.log"
    assert f"the service's log: {log}" in result.stderr
    assert "RuntimeError: init broke on purpose" in log.read_text()


def test_deploy_logs_delete_on_the_process_target(project: Path) -> None:
    deployed = mldeploy("deploy", "diabetes", "--target", "process", cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    uris = uri_lines(deployed.stdout)
    try:
        assert requests.post(uris["scoring_uri"], json={"data": ROW}, timeout=10).status_code == 200
        logs = mldeploy("logs", "diabetes", "--tail", "5", cwd=project)
        assert logs.returncode == 0 and "init() done" in logs.stdout
    finally:
        deleted = mldeploy("delete", "diabetes", cwd=project)
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted: diabetes (process)" in deleted.stdout
    with pytest.raises(requests.ConnectionError):
        requests.get(uris["scoring_uri"], timeout=2)
    again = mldeploy("logs", "diabetes", cwd=project)
    assert again.returncode == 2 and "no service is running" in again.stderr


def test_models_register_and_list(project: Path) -> None:
    registered = mldeploy("models", "register", cwd=project)
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout.startswith("sklearn_regression_model:1 ")
    listed = mldeploy("models", "list", "--json", cwd=project)
    models = json.loads(listed.stdout)
    assert [(m["name"], m["version"], m["tags"]["area"]) for m in models] == [("sklearn_regression_model", 1, "diabetes")]
    # Registering unchanged content again reuses the version instead of piling one up.
    assert mldeploy("models", "register", cwd=project).stdout.startswith("sklearn_regression_model:1 ")


def test_a_config_error_is_one_line_and_exit_2(project: Path) -> None:
    config = project / "mldeploy.yaml"
    config.write_text(config.read_text().replace("entry_script: score.py", "entry_scrpt: score.py"))
    result = mldeploy("models", "list", cwd=project)
    assert result.returncode == 2
    assert "mldeploy.yaml: deployments.diabetes.entry_scrpt:" in result.stderr
    assert "entry_script" in result.stderr  # the close match is suggested
    assert "Traceback" not in result.stderr


def test_check_runs_the_builtin_checks_without_pytest(project: Path) -> None:
    result = mldeploy("check", "--target", "process", "--skip", "profile", "--examples", "10", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    for check in ("health", "swagger", "properties", "robustness", "samples"):
        assert f"diabetes::{check} PASSED" in result.stdout


def test_check_prints_warnings_and_the_counts(tmp_path: Path) -> None:
    source = REPO / "tests" / "projects" / "broken-rawjson"
    target = tmp_path / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__"))
    result = mldeploy("check", "--target", "process", "--skip", "profile", cwd=target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken-rawjson::robustness PASSED" in result.stdout
    assert "  warning: not JSON: answered 500 (run() without a schema must handle malformed input itself)" in result.stdout
    warnings = result.stdout.count("  warning: ")
    assert result.stdout.rstrip().splitlines()[-1] == f"4 passed, 0 failed, 1 skipped, {warnings} warnings"


def test_profile_writes_json_and_html(project: Path, tmp_path: Path) -> None:
    config = project / "mldeploy.yaml"
    config.write_text(config.read_text().replace("duration_s: 20", "duration_s: 4\n      max_concurrency: 4"))
    out = tmp_path / "report"
    result = mldeploy("profile", "diabetes", "--target", "process", "--out", str(out), cwd=project, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "recommend" in result.stdout and "gate passed: " in result.stdout
    profile = json.loads((out / "profile.json").read_text())
    assert profile["requestedCpu"] > 0 and profile["requestedMemoryInGb"] > 0
    assert profile["successQueries"] == profile["totalQueries"] > 0
    html = (out / "profile.html").read_text()
    assert html.count("data:image/png;base64,") >= 2


def test_package_dockerfile_only_writes_a_buildable_context(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "context"
    result = mldeploy("package", "diabetes", "--dockerfile-only", str(out), cwd=project, timeout=600)
    assert result.returncode == 0, result.stderr
    dockerfile = (out / "Dockerfile").read_text()
    assert "--no-index" in dockerfile and "5001" in dockerfile and "HEALTHCHECK" in dockerfile
    assert list(out.rglob("sklearn_regression_model.pkl"))
    assert list(out.rglob("score.py"))
    assert any(p.name.startswith("uvicorn") for p in out.rglob("*.whl"))
    assert os.access(out, os.R_OK)


@pytest.mark.docker
def test_deploy_logs_delete_on_the_docker_target(project: Path) -> None:
    import docker

    deployed = mldeploy("deploy", "diabetes", "--target", "docker", cwd=project, timeout=900)
    assert deployed.returncode == 0, deployed.stderr
    uris = uri_lines(deployed.stdout)
    client = docker.from_env()
    try:
        (container,) = client.containers.list(filters={"label": ["mldeploy.deployment=diabetes", "mldeploy.keep=true"]})
        # The service outlives the command that started it.
        assert requests.post(uris["scoring_uri"], json={"data": ROW}, timeout=10).status_code == 200
        logs = mldeploy("logs", "diabetes", cwd=project)
        assert logs.returncode == 0 and "init() done" in logs.stdout
    finally:
        deleted = mldeploy("delete", "diabetes", cwd=project)
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted: diabetes (docker)" in deleted.stdout
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(container.id)


@pytest.mark.skipif(os.geteuid() != 0, reason="installs with apt-get only as root (tests/core/test_image_base.py covers a user)")
def test_base_image_installs_a_missing_mmdebstrap_with_apt_get(tmp_path: Path) -> None:
    """A fresh machine: no mmdebstrap on PATH. A fake apt-get 'installs' a fake mmdebstrap that fails,
    so nothing is built; what counts is the notice and that the installed tool is then used."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    apt = bin_dir / "apt-get"
    apt.write_text(
        "#!/bin/sh\n"
        f"echo \"$*\" >> {bin_dir}/apt.log\n"
        f"printf '#!/bin/sh\\necho fake mmdebstrap ran >&2\\nexit 3\\n' > {bin_dir}/mmdebstrap\n"
        f"/bin/chmod +x {bin_dir}/mmdebstrap\n"
    )
    apt.chmod(0o755)
    env = dict(os.environ, PATH=str(bin_dir))
    result = subprocess.run([sys.executable, "-m", "pytest_mldeploy.cli", "base-image", "--tag", "mldeploy/base:never-built"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert "mmdebstrap (builds the offline base image) is not installed: installing the Debian package mmdebstrap" in result.stderr
    assert (bin_dir / "apt.log").read_text().startswith("install -y -qq mmdebstrap")
    assert "fake mmdebstrap ran" in result.stderr and "mmdebstrap failed in every mode tried" in result.stderr


# ---- `mldeploy models` (issue #9, hole 10) --------------------------------------------------------------


def test_models_actions_take_config_before_or_after_the_action(project: Path, tmp_path: Path) -> None:
    config = str(project / "mldeploy.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    registered = mldeploy("models", "register", "--config", config, cwd=elsewhere)
    assert registered.returncode == 0, registered.stderr
    for args in (("models", "list", "--config", config), ("models", "--config", config, "list"),
                 ("models", "list", "--json", "--config", config)):
        listed = mldeploy(*args, cwd=elsewhere)
        assert listed.returncode == 0, (args, listed.stderr)
        assert "sklearn_regression_model" in listed.stdout, args


def test_models_list_refuses_a_name_that_could_escape(project: Path) -> None:
    result = mldeploy("models", "list", "--name", "../x", cwd=project)
    assert result.returncode == 2
    assert result.stderr.strip() == ("mldeploy: error: model name '../x' is refused: use letters, digits, '.', '_' "
                                     "and '-', starting with a letter or digit")
    assert "no models registered" not in result.stdout
    nothing = mldeploy("models", "list", "--name", "nope", cwd=project)
    assert nothing.returncode == 0 and nothing.stdout.startswith("no model 'nope' registered in ")


def test_models_gc_removes_orphaned_content(project: Path) -> None:
    assert mldeploy("models", "register", cwd=project).returncode == 0
    objects = project / ".mldeploy" / "objects"
    orphan = objects / ("ab" * 32)
    orphan.write_bytes(b"left by a writer killed before its index write")
    result = mldeploy("models", "gc", "--config", str(project), cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("removed 1 unreferenced object(s) (46 B) and 0 leftover temp file(s) from ")
    assert not orphan.exists() and len(list(objects.iterdir())) == 1


def test_a_config_with_invalid_utf8_is_one_line_and_exit_2(project: Path) -> None:
    (project / "mldeploy.yaml").write_bytes(b"deployments:\n  diabetes:\n    entry_script: \xc3(score.py\n")
    result = mldeploy("models", "list", cwd=project)
    assert result.returncode == 2
    assert result.stderr == "mldeploy: error: mldeploy.yaml: line 3, column 19: not valid UTF-8 (byte 0xc3); save the file as UTF-8\n"
