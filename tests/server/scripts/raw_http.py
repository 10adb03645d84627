"""@rawhttp: run() gets an AMLRequest for GET and POST and answers with AMLResponse or a JSON value."""
import json

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request):
    if request.method == "GET":
        return AMLResponse(
            {"args": request.args.to_dict(), "path": request.path, "full_path": request.full_path,
             "name": request.args.get("name"), "accept": request.headers.get("Accept")},
            200, {"X-Served-By": "raw"}, json_str=True,
        )
    if request.headers.get("Content-Type", "").startswith("application/octet-stream"):
        data = request.get_data()
        return AMLResponse(bytes(reversed(data)), 201, {"Content-Type": "application/octet-stream"})
    if request.args.get("fail"):
        return AMLResponse("model exploded", 503)
    payload = request.get_json()
    return {"json": payload, "same": request.json == payload, "length": len(request.data)}
