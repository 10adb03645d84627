"""A @rawhttp entry script that takes uploaded files as Azure's binary-payload sample does
(`request.files`), and answers 400 to anything else, so a profile that sent the wrong body fails
every request."""
from azureml.contrib.services.aml_request import rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request):
    files = [f for name in ("file", "file[]") for f in request.files.getlist(name)]
    if not files:
        return AMLResponse(f"expected files in a multipart form, got {request.headers.get('Content-Type')!r}", 400)
    return {"files": [(f.filename, len(f.read())) for f in files]}
