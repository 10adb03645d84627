"""Start-up failures with a well-known cause name their fix in the log and in the service's failure reason."""
from __future__ import annotations

import pytest

from pytest_mldeploy.core.service_state import reading_from_exit
from pytest_mldeploy.server import shims


@pytest.mark.parametrize("script, fix", [
    ("old_joblib.py", "known fix: use `import joblib` (scikit-learn 0.23 removed sklearn.externals.joblib)"),
    ("old_numpy_alias_in_init.py", "known fix: use the builtin (float, int, bool, object, str, complex)"),
])
def test_known_import_failures_name_their_fix(start_server, script_app, script: str, fix: str) -> None:
    server = start_server(script_app(script), wait=False)
    code = server.wait_exit(60)
    assert code == 3
    log = server.log()
    assert fix in log
    reason = reading_from_exit(code, log).reason
    assert fix in reason.splitlines()[0], reason


@pytest.mark.parametrize("statement, fix", [
    ("from sklearn.externals import joblib", "use `import joblib`"),
    ("import sklearn.externals.joblib", "use `import joblib`"),
    ("from sklearn.cross_validation import train_test_split", "sklearn.model_selection"),
    ("from collections import Mapping", "collections.abc"),
    ("from pandas.io.json import json_normalize", "pandas.json_normalize"),
])
def test_known_fix_table(statement: str, fix: str) -> None:
    pytest.importorskip(statement.split()[1].split(".")[0])
    with pytest.raises(ImportError) as caught:
        exec(statement, {})
    fixed = shims.with_known_fix(caught.value)
    assert fixed is not None and type(fixed) is type(caught.value)
    assert str(fixed).startswith(str(caught.value)) and fix in str(fixed)


def test_unknown_import_failures_are_left_alone() -> None:
    assert shims.known_fix(ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")) is None
