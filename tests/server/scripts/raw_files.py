"""Azure's binary-payload form: @rawhttp reads uploaded files from AMLRequest.files (multipart form)."""
import hashlib
import os
import tempfile

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    if request.method != "POST":
        return AMLResponse("POST a multipart form", 405)
    if "file[]" not in request.files:
        return AMLResponse({"error": "no file[] part", "form": request.form.to_dict()}, 400, json_str=True)
    described = []
    for upload in request.files.getlist("file[]"):
        first = upload.read(4)
        upload.seek(0)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "upload")
            upload.save(path)
            with open(path, "rb") as saved:
                digest = hashlib.sha256(saved.read()).hexdigest()
        described.append({"filename": upload.filename, "name": upload.name, "mimetype": upload.mimetype,
                          "sha256": digest, "first": first.hex(), "size": upload.content_length})
    return {"files": described, "form": request.form.to_dict(flat=False)}
