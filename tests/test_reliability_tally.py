"""The reliability suite's tally (tests/reliability/conftest.py), run on a small suite with pytester."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parent / "reliability" / "conftest.py"

SUITE = """
import pytest

@pytest.mark.reliability
def test_holds():
    pass

@pytest.mark.reliability
def test_breaks():
    assert False, "the service fell over"

@pytest.mark.reliability
def test_not_here():
    pytest.skip("no engine")

@pytest.mark.reliability
def test_campaign(reliability_counter):
    for held in (True, True, False):
        reliability_counter.add("fuzz", held=held, detail="500 from the server")
    reliability_counter.note("fuzz", "3 requests")

@pytest.mark.reliability
def test_campaign_whose_own_assertion_fails(reliability_counter):
    reliability_counter.add("kills", held=True)
    assert False, "memory grew"
"""


@pytest.mark.parametrize("workers", [None, "2"])
def test_tally_counts_tests_and_campaigns(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: str) -> None:
    pytester.makeini("[pytest]\nmarkers =\n    reliability: the reliability suite\n")
    # Laid out like tests/: the conftest in its own folder, marked tests also in another one.
    rel = pytester.mkpydir("rel")
    (rel / "conftest.py").write_text(CONFTEST.read_text())
    (rel / "test_suite.py").write_text(SUITE)
    (rel / "test_here.py").write_text("def test_unmarked_beside_the_conftest():\n    pass\n")  # counted unmarked
    other = pytester.mkpydir("other")
    (other / "test_elsewhere.py").write_text(
        "import pytest\n\n@pytest.mark.reliability\ndef test_marked_elsewhere():\n    pass\n\n"
        "def test_not_reliability():\n    pass\n"
    )
    out = pytester.path / "tally.json"
    monkeypatch.setenv("MLDEPLOY_RELIABILITY_JSON", str(out))
    args = ["-p", "no:cacheprovider", "-p", "no:randomly", "rel", "other"] + (["-n", workers] if workers else [])
    result = pytester.runpytest_subprocess(*args) if workers else pytester.runpytest(*args)
    result.assert_outcomes(passed=5, failed=2, skipped=1)
    # holds 1/1/0, breaks 1/0/1, campaign 3/2/1, own assertion 2/1/1 (its one held kill, then the
    # failure), the unmarked test beside the conftest 1/1/0, the marked one elsewhere 1/1/0; the
    # unmarked one elsewhere is not counted.
    result.stdout.fnmatch_lines([
        "*= reliability =*",
        "  elsewhere  *1 tried  *1 held  *0 failed",
        "  here  *1 tried  *1 held  *0 failed",
        "  suite  *7 tried  *4 held  *3 failed, 1 skipped",
        "reliability: 9 tried, 6 held, 3 failed (7 tests: 4 passed, 2 failed, 1 skipped); written to *tally.json",
    ])
    summary = json.loads(out.read_text())
    assert summary["totals"] == {"tried": 9, "held": 6, "failed": 3}
    by_test = {s["test"].split("::")[1]: s for s in summary["scenarios"]}
    assert set(by_test) == {"test_holds", "test_breaks", "test_not_here", "test_campaign",
                            "test_campaign_whose_own_assertion_fails", "test_unmarked_beside_the_conftest",
                            "test_marked_elsewhere"}
    assert by_test["test_campaign"]["campaign"]["fuzz"]["failures"] == ["500 from the server"]
    assert by_test["test_campaign"]["campaign"]["fuzz"]["notes"] == ["3 requests"]
    assert "the service fell over" in by_test["test_breaks"]["detail"]
    assert by_test["test_not_here"]["outcome"] == "skipped" and "no engine" in by_test["test_not_here"]["detail"]


def test_no_reliability_tests_print_nothing(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.read_text())
    sub = pytester.mkpydir("sub")
    (sub / "test_plain.py").write_text("def test_a():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "= reliability =" not in result.stdout.str() and "reliability:" not in result.stdout.str()
    assert not (pytester.path / "mldeploy-report").exists()
