"""init() raises: the server must log the traceback and exit non-zero."""


def init():
    raise RuntimeError("model store unreachable from init()")


def run(data):
    return data
