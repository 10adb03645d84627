"""Where the load's requests come from: a lines file, a folder of files (multipart), a .http file,
else the swagger example; and what they look like on the wire (parsed back with the stdlib)."""
from __future__ import annotations

import json
from pathlib import Path
from email.parser import BytesParser
from email.policy import HTTP
from types import SimpleNamespace

import pytest

from pytest_mldeploy.checks.profiling.workload import NoWorkload, iter_requests, swagger_example, workload_bodies
from pytest_mldeploy.errors import ConfigError

SWAGGER = {"definitions": {"ServiceInput": {"type": "object", "example": {"data": [[0.1, 1.2]]}}}}


def _deployment(requests=None):  # type: ignore[no-untyped-def]
    return SimpleNamespace(name="demo", profile=SimpleNamespace(requests=requests))


def test_requests_file_lines_are_the_bodies(tmp_path: Path) -> None:
    path = tmp_path / "requests.txt"
    path.write_text('{"data": [[1]]}\n\n  {"data": [[2]]}  \n')
    bodies, source = workload_bodies(_deployment(path), None)
    assert bodies == [(b'{"data": [[1]]}', "application/json"), (b'{"data": [[2]]}', "application/json")]
    assert "2 request bodies, application/json" in source


def test_empty_requests_file_names_the_key_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "requests.txt"
    path.write_text("\n\n")
    with pytest.raises(ConfigError, match=r"deployments\.demo\.profile\.requests: .* holds no request bodies; write one"):
        workload_bodies(_deployment(path), None)


def test_swagger_example_when_no_file() -> None:
    bodies, source = workload_bodies(_deployment(), SWAGGER)
    assert [(json.loads(b), t) for b, t in bodies] == [({"data": [[0.1, 1.2]]}, "application/json")]
    assert "swagger example" in source


def test_openapi3_example_is_found_too() -> None:
    doc = {"components": {"schemas": {"ServiceInput": {"example": {"x": 1}}}}}
    assert swagger_example(doc) == b'{"x": 1}'


def test_no_file_and_no_example_says_what_to_set() -> None:
    with pytest.raises(NoWorkload, match="profile.requests: not set, and the service's /swagger.json has no ServiceInput example"):
        workload_bodies(_deployment(), {"definitions": {}})


def _form(body: bytes, content_type: str) -> list[tuple[str, str, bytes]]:
    """(field name, filename, content) of every part, parsed as a server would (stdlib email parser)."""
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    assert message.is_multipart()
    return [(part.get_param("name", header="content-disposition"), part.get_filename(), part.get_payload(decode=True)) for part in message.iter_parts()]


def test_a_folder_is_one_multipart_request_per_file(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x00binary")
    (folder / "a.txt").write_bytes(b"line one\nline two")
    (folder / ".hidden").write_bytes(b"skipped")
    (folder / "sub").mkdir()
    requests = list(iter_requests(folder))
    assert len(requests) == 2
    assert all(t.startswith("multipart/form-data; boundary=") for _, t in requests)
    assert [_form(b, t) for b, t in requests] == [
        [("file", "a.txt", b"line one\nline two")],
        [("file", "b.png", b"\x89PNG\r\n\x00binary")],
    ]
    assert b"Content-Type: image/png" in requests[1][0]
    _, source = workload_bodies(_deployment(folder), None)
    assert "2 request bodies, multipart/form-data" in source


def test_an_empty_folder_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"profile.requests: .* holds no request bodies; put the files to send in it"):
        list(iter_requests(tmp_path))


HTTP_FILE = """# two requests, as VS Code's REST Client writes them
POST {{host}}/score HTTP/1.1
Content-Type: multipart/form-data; boundary=XYZ
Authorization: Bearer not-sent

--XYZ
Content-Disposition: form-data; name="file[]"; filename="a.bin"
Content-Type: application/octet-stream

< ./data/a.bin
--XYZ
Content-Disposition: form-data; name="file[]"; filename="b.bin"
Content-Type: application/octet-stream

< data/b.bin
--XYZ--

###
// a JSON one
POST /score
Content-Type: application/json

{"data": [[1, 2]]}

###
"""


def test_an_http_file_holds_any_body_with_files_inlined(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.bin").write_bytes(b"\x00\x01\r\n--not-a-boundary")
    (tmp_path / "data" / "b.bin").write_bytes(b"BBB")
    path = tmp_path / "requests.http"
    path.write_text(HTTP_FILE)
    (form, form_type), (body, body_type) = iter_requests(path)
    assert form_type == "multipart/form-data; boundary=XYZ"
    assert _form(form, form_type) == [("file[]", "a.bin", b"\x00\x01\r\n--not-a-boundary"), ("file[]", "b.bin", b"BBB")]
    assert (json.loads(body), body_type) == ({"data": [[1, 2]]}, "application/json")


def test_an_http_file_request_that_is_not_a_post_names_it(tmp_path: Path) -> None:
    path = tmp_path / "requests.http"
    path.write_text("GET /score\n\n{}\n")
    with pytest.raises(ConfigError, match=r"requests.http: request 1 does not start with `POST /score`"):
        list(iter_requests(path))


def test_an_http_file_with_a_missing_include_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "requests.http"
    path.write_text("POST /score\nContent-Type: application/octet-stream\n\n< ./nope.bin\n")
    with pytest.raises(ConfigError, match=r"nope.bin cannot be read .*fix the `< ./nope.bin` line of request 1"):
        list(iter_requests(path))
