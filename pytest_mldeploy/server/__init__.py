"""The AML-compatible scoring server: runs one deployment's Azure ML v1 entry script unchanged.

It is copied into every service image on its own (with a stub `pytest_mldeploy/__init__.py` that holds
only the version, see core/server_copy.py), so it imports only the standard library, `uvicorn`, `httptools` (and `uvloop` when present) and whatever the
entry script imports. See docs/server.md for the routes, settings and error contract.
"""
