"""Broken on purpose, without a schema: run(raw) fills 400 MiB on a request asking for it.

Under a 128 MiB limit the kernel OOM-kills the server. A script in the most common Azure pattern
(json.loads of the raw body) otherwise.
"""
import json


def init():
    print("ready", flush=True)


def run(raw):
    request = json.loads(raw)
    if request.get("allocate_mb"):
        print(f"allocating {request['allocate_mb']} MiB", flush=True)
        hog = bytearray(int(request["allocate_mb"]) * 1024 * 1024)
        for i in range(0, len(hog), 4096):
            hog[i] = 1
        return len(hog)
    return [sum(row) for row in request["data"]]
