"""Broken on purpose: run() ends the whole server on a request holding a value over 1000.

How it ends is the DIE_BY environment variable: `exit` (os._exit(3)), `kill` (SIGKILL to itself),
`segfault` (a NULL read through ctypes), `oom` (fills 400 MiB, past a small memory limit) or
`sysexit` (sys.exit(4), which the server catches and answers 500: not a death).
"""
import ctypes
import os
import signal
import sys

import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema

LIMIT = 1000


def init():
    print(f"ready; run() dies by {os.environ.get('DIE_BY', 'exit')} on a value over {LIMIT}", flush=True)


@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0, 3.0]])))
@output_schema(NumpyParameterType(np.array([6.0])))
def run(data):
    if (np.abs(data) > LIMIT).any():
        die(os.environ.get("DIE_BY", "exit"))
    return data.sum(axis=1).tolist()


def die(how):
    print(f"dying by {how}", flush=True)
    if how == "exit":
        os._exit(3)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "segfault":
        ctypes.string_at(0)
    if how == "oom":
        hog = bytearray(400 * 1024 * 1024)
        for i in range(0, len(hog), 4096):
            hog[i] = 1
    if how == "sysexit":
        sys.exit(4)
