"""A @rawhttp entry script that reads a multipart form's files from the raw body (stdlib parser),
and answers 400 to anything else, so a profile that sent the wrong body fails every request."""
from email.parser import BytesParser
from email.policy import HTTP

from azureml.contrib.services.aml_request import rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request):
    content_type = request.headers.get("Content-Type", "")
    if not content_type.startswith("multipart/form-data"):
        return AMLResponse(f"expected a multipart form, got {content_type!r}", 400)
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    form = BytesParser(policy=HTTP).parsebytes(head + request.get_data())
    files = [(part.get_filename(), len(part.get_payload(decode=True) or b"")) for part in form.iter_parts() if part.get_filename()]
    if not files:
        return AMLResponse("no file in the form", 400)
    return {"files": files}
