"""@rawhttp with uploads: AMLRequest.files and .form from a multipart body, as Flask's request gives them."""
from __future__ import annotations

import hashlib
import io

import pytest
import requests

from pytest_mldeploy.server.amlhttp import AMLRequest, FileStorage, parse_multipart

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + b"\r\n--not-the-boundary\r\n\r\n"


def _prepared(**kwargs) -> requests.PreparedRequest:
    return requests.Request("POST", "http://service/score", **kwargs).prepare()


def test_files_and_fields_come_apart_byte_exact(tmp_path) -> None:
    prepared = _prepared(files=[("file[]", ("a.png", PNG, "image/png")), ("file[]", ("b.txt", b"hello")),
                                ("note", (None, "café"))], data={"k": "v"})
    request = AMLRequest("POST", "/score", b"", list(prepared.headers.items()), prepared.body)
    uploads = request.files.getlist("file[]")
    assert [f.filename for f in uploads] == ["a.png", "b.txt"]
    assert uploads[0].read() == PNG and uploads[0].mimetype == "image/png" and uploads[0].name == "file[]"
    assert request.files["file[]"] is uploads[0] and "missing" not in request.files
    assert request.form.to_dict(flat=False) == {"k": ["v"], "note": ["café"]}
    assert request.values.get("k") == "v"
    uploads[1].save(tmp_path / "b.txt")
    assert (tmp_path / "b.txt").read_bytes() == b"hello"
    uploads[1].seek(0)
    sink = io.BytesIO()
    uploads[1].save(sink)
    assert sink.getvalue() == b"hello" and uploads[1].tell() == 5 and bool(uploads[1])


def test_quoted_boundary_lf_lines_and_rfc2231_filenames() -> None:
    body = (b'--b"x\n'
            b"Content-Disposition: form-data; name=\"up\"; filename*=UTF-8''na%C3%AFve.csv\n"
            b"Content-Type: text/csv\n\n"
            b"a,b\n1,2\n"
            b'--b"x--\n')
    fields, files = parse_multipart(body, 'multipart/form-data; boundary="b\\"x"')
    assert fields == [] and len(files) == 1
    name, upload = files[0]
    assert name == "up" and upload.filename == "naïve.csv" and upload.read() == b"a,b\n1,2"


@pytest.mark.parametrize("content_type, body", [
    ("multipart/form-data", b"--x\r\n\r\nno boundary given\r\n--x--"),
    ("multipart/form-data; boundary=x", b"garbage without delimiters"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=a"),
])
def test_malformed_multipart_gives_what_it_can(content_type, body) -> None:
    request = AMLRequest("POST", "/score", b"", [("Content-Type", content_type)], body)
    assert len(request.files) == 0 and len(request.form) == 0


def test_json_bodies_have_no_files() -> None:
    request = AMLRequest("POST", "/score", b"", [("Content-Type", "application/json")], b"{}")
    assert len(request.files) == 0 and isinstance(FileStorage(b"", None, None), FileStorage)


@pytest.fixture(scope="module")
def uploads(module_servers, module_app):
    return module_servers(module_app("raw_files.py"))


def test_rawhttp_script_reads_uploaded_files(uploads) -> None:
    response = uploads.post("/score", files=[("file[]", ("scan.png", PNG, "image/png")),
                                             ("file[]", ("empty.bin", b""))], data={"patient": "42"})
    assert response.status_code == 200, uploads.log()
    described = response.json()
    assert described["form"] == {"patient": ["42"]}
    first, second = described["files"]
    assert first == {"filename": "scan.png", "name": "file[]", "mimetype": "image/png",
                     "sha256": hashlib.sha256(PNG).hexdigest(), "first": PNG[:4].hex(), "size": len(PNG)}
    assert second["filename"] == "empty.bin" and second["size"] == 0


def test_rawhttp_script_without_the_file_part(uploads) -> None:
    response = uploads.post("/score", files={"other": ("x.txt", b"x")})
    assert response.status_code == 400 and response.json()["error"] == "no file[] part"
