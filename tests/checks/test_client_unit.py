"""The curl line and the client's URL handling (pure; no server)."""
from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from pytest_mldeploy.client import INLINE_BODY_LIMIT, ScoringClient, curl_command, curl_for, from_service


def test_inline_json_body_round_trips_through_the_shell():
    body = b'{"data": [[1.0, 2.0]], "note": "it\'s a \\"quote\\" $HOME `x`"}'
    line = curl_command("POST", "http://127.0.0.1:5001/score", body, {"Content-Type": "application/json"})
    argv = shlex.split(line)
    assert argv[:6] == ["curl", "-sS", "-i", "-X", "POST", "http://127.0.0.1:5001/score"]
    assert argv[argv.index("--data-binary") + 1] == body.decode()
    assert argv[argv.index("-H") + 1] == "Content-Type: application/json"


def test_the_key_is_an_env_reference_never_the_secret():
    line = curl_command("POST", "http://h/score", b"{}", {"Authorization": "Bearer s3cret", "Content-Type": "application/json"})
    assert "s3cret" not in line
    assert '-H "Authorization: Bearer $MLDEPLOY_KEY"' in line
    expanded = subprocess.run(["bash", "-c", f"printf '%s\\n' {line[len('curl '):]}"], capture_output=True, text=True,
                              env={"MLDEPLOY_KEY": "k1", "PATH": "/usr/bin:/bin"}).stdout.splitlines()
    assert "Authorization: Bearer k1" in expanded


def test_default_headers_are_left_out():
    line = curl_command("GET", "http://h/", None, {"User-Agent": "python-requests", "Accept": "*/*", "Content-Length": "0", "X-Custom": "1"})
    assert "User-Agent" not in line and "Accept" not in line and "Content-Length" not in line
    assert "'X-Custom: 1'" in line
    assert "--data-binary" not in line


def test_empty_body_is_sent_as_empty_data():
    argv = shlex.split(curl_command("POST", "http://h/score", b"", {}))
    assert argv[argv.index("--data-binary") + 1] == ""


@pytest.mark.parametrize("body", [b'{"data": "\xff\xfe"}', b"[" * (INLINE_BODY_LIMIT + 1), b"line1\nline2"])
def test_binary_or_large_or_multiline_bodies_go_to_a_file(tmp_path: Path, body: bytes):
    argv = shlex.split(curl_command("POST", "http://h/score", body, {}, body_dir=tmp_path))
    ref = argv[argv.index("--data-binary") + 1]
    assert ref.startswith("@")
    assert Path(ref[1:]).parent == tmp_path
    assert Path(ref[1:]).read_bytes() == body


def test_curl_for_reads_a_prepared_request(tmp_path: Path):
    prepared = requests.Request("POST", "http://127.0.0.1:1/score", data=b'{"a": 1}',
                                headers={"Content-Type": "application/json", "Authorization": "Bearer x"}).prepare()
    argv = shlex.split(curl_for(prepared, tmp_path))
    assert argv[argv.index("--data-binary") + 1] == '{"a": 1}'
    assert "Authorization: Bearer $MLDEPLOY_KEY" in argv


def test_client_urls_and_key_header():
    client = ScoringClient("http://127.0.0.1:5001/", key="abc", scoring_path="score")
    assert client.scoring_url == "http://127.0.0.1:5001/score"
    assert client.swagger_url == "http://127.0.0.1:5001/swagger.json"
    assert client.url("/") == "http://127.0.0.1:5001/"
    assert client._headers({"X": "1"}) == {"Authorization": "Bearer abc", "X": "1"}
    assert ScoringClient("http://h")._headers() == {}


def test_from_service_takes_the_first_key_and_the_service_routes():
    service = SimpleNamespace(base_url="http://127.0.0.1:7000/api", scoring_uri="http://127.0.0.1:7000/api/v1/score",
                              swagger_uri="http://127.0.0.1:7000/api/swagger.json", keys=["", "k2"])
    client = from_service(service)
    assert client.key == "k2"
    assert client.scoring_url == "http://127.0.0.1:7000/api/v1/score"
    assert client.swagger_url == "http://127.0.0.1:7000/api/swagger.json"
    assert ScoringClient.from_service(SimpleNamespace(**{**vars(service), "keys": []})).key is None


def test_health_ok_is_false_when_nothing_listens():
    client = ScoringClient("http://127.0.0.1:9", timeout=2)
    assert client.health_ok() is False
