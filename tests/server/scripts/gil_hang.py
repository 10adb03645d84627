"""Told "hold-the-gil", run() backtracks catastrophically inside `re` (C code that keeps the GIL): the
worker's event loop freezes with it, so only the supervisor can notice and replace the worker."""
import os
import re


def init():
    pass


def run(data):
    if data == "hold-the-gil":
        re.match(r"(a+)+$", "a" * 64 + "b")
    return {"pid": os.getpid(), "received": data}
