"""compare.html and the Markdown summary, rendered from a saved compare.json alone (no service runs here).

`data/failing-compare.json` is the compare.json of a real run: the example against a candidate whose
preprocessing scales its input by 1.5 (tests/compare/compare_projects.py, variant `scaled`), speed measured.
"""
from __future__ import annotations

import copy
import html
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pytest_mldeploy.compare.html_report import render_html, write_html
from pytest_mldeploy.compare.markdown import MAX_CHARS, render_markdown
from pytest_mldeploy.compare.publish import STEP_SUMMARY_ENV, publish_markdown

SAVED = Path(__file__).parent / "data" / "failing-compare.json"
HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def failing() -> dict:
    return json.loads(SAVED.read_text())


class _Tags(HTMLParser):
    """Every start tag with its attributes, and every text run, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    return parser


def test_saved_failing_compare_renders_its_verdict_worst_rows_both_answers_and_curl_lines(failing: dict, tmp_path: Path) -> None:
    path = write_html(failing, tmp_path)
    page = path.read_text(encoding="utf-8")
    text = html.unescape(" ".join(_parse(page).text))
    assert path.name == "compare.html"
    assert "FAILED: answers" in text
    worst = failing["answers"]["worstRows"]
    assert len(worst) == 5
    for row in worst:
        assert f"{row['request']} row {row['row']}" in text
        assert json.dumps(row["baseline"]) in text and json.dumps(row["candidate"]) in text
        assert json.dumps(row["input"]) in text
        assert row["curl"]["baseline"] in text and row["curl"]["candidate"] in text
    # Each gate with its verdict and threshold; the speed table; both charts inline.
    for gate in failing["gates"]:
        assert gate["message"] in text
    assert "|a − b| ≤ 1e-06 + 1e-05 × |baseline|" in text
    assert f"p50 and p95 ≤ {failing['settings']['speed']['p95_ratio']:g} × baseline" in text
    assert "cold start (deploy to healthy)" in text and "peak memory" in text
    images = [attrs for tag, attrs in _parse(page).tags if tag == "img"]
    assert {img["alt"] for img in images} == {"answer difference distribution", "latency and throughput per alternating round"}
    assert all(img["src"].startswith("data:image/png;base64,") for img in images)


def test_page_is_self_contained_and_runs_no_script(failing: dict) -> None:
    tags = _parse(render_html(failing)).tags
    assert not [t for t, _ in tags if t in ("script", "iframe", "object", "embed", "link")]
    assert not [a for _, a in tags for name in a if name.startswith("on")]
    assert not [a for _, a in tags for name in ("src", "href") if a.get(name) and not a[name].startswith(("data:", "#"))]
    csp = next(a["content"] for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "script" not in csp


def test_a_response_body_holding_a_script_is_shown_not_run(failing: dict) -> None:
    hostile = copy.deepcopy(failing)
    row = hostile["answers"]["worstRows"][0]
    row["candidate"], row["input"], row["request"] = HOSTILE, [HOSTILE], f"line {HOSTILE}"
    hostile["answers"]["statusMismatches"] = [{
        "request": HOSTILE, "kind": "sample", "baseline": 200, "candidate": 500, "baselineBody": "[1.0]",
        "candidateBody": HOSTILE, "curl": {"baseline": f"curl --data-binary '{HOSTILE}'", "candidate": f"curl '{HOSTILE}'"}}]
    hostile["contract"]["breaking"] = [f"input.{HOSTILE}: parameter removed"]
    hostile["sensitivity"] = {**hostile["sensitivity"], "constant": True, "constantAnswer": HOSTILE, "message": HOSTILE}
    hostile["gates"][0]["message"] = HOSTILE
    hostile["notes"] = [HOSTILE]
    hostile["candidate"]["spec"] = HOSTILE
    page = render_html(hostile)
    parsed = _parse(page)
    assert [t for t, _ in parsed.tags if t in ("script", "img") and _.get("src") == "x"] == []
    assert not [t for t, _ in parsed.tags if t == "script"]
    assert not [a for _, a in parsed.tags for name in a if name.startswith("on")]
    assert "<script>" not in page
    # ... and each of them is shown to the reader, as text.
    assert " ".join(parsed.text).count(HOSTILE) >= 8


def test_markdown_of_the_saved_compare_is_short_and_github_flavoured(failing: dict) -> None:
    markdown = render_markdown(failing)
    lines = markdown.splitlines()
    assert lines[0] == "### mldeploy compare failed: `candidate-scaled` against `baseline`"
    assert lines[2].startswith("❌ **Failed on answers**")
    assert "| gate | result | details |" in lines
    assert sum(line.startswith("| sample_requests.txt") for line in lines) == 3  # the top rows only
    assert markdown.count("<details>") == markdown.count("</details>") >= 1
    assert len(markdown) < 6000


def test_markdown_of_a_huge_diff_stays_under_githubs_comment_limit(failing: dict) -> None:
    huge = copy.deepcopy(failing)
    big = "x" * 50_000
    huge["gates"] = [{**gate, "message": big} for gate in huge["gates"]]
    huge["contract"]["breaking"] = [f"input.p{i}: parameter removed {big}" for i in range(5000)]
    huge["contract"]["additions"] = [f"output.q{i}: new output property" for i in range(5000)]
    huge["answers"]["worstRows"] = [{**huge["answers"]["worstRows"][0], "input": [big], "baseline": [big], "candidate": [big],
                                     "curl": {"baseline": big, "candidate": big}}] * 1000
    huge["answers"]["statusMismatches"] = [{"request": f"r{i} {big}", "kind": "generated", "baseline": 200, "candidate": 500,
                                            "baselineBody": big, "candidateBody": big, "curl": {}} for i in range(5000)]
    markdown = render_markdown(huge)
    assert len(markdown) <= MAX_CHARS < 65_536
    assert "… and 4985 more (compare.json)" in markdown and "… and 4995 more (compare.json)" in markdown
    assert markdown.count("<details>") == markdown.count("</details>")


def test_markdown_keeps_hostile_text_inside_code_or_escaped(failing: dict) -> None:
    hostile = copy.deepcopy(failing)
    hostile["gates"][0]["message"] = f"bad | pipe\nnew line {HOSTILE}"
    hostile["answers"]["worstRows"][0]["candidate"] = "`| ```"
    markdown = render_markdown(hostile)
    gate_row = next(line for line in markdown.splitlines() if line.startswith("| answers |"))
    assert "bad \\| pipe new line &lt;script&gt;" in gate_row and "<script>" not in markdown
    assert "| `'\\| '''` |" in markdown  # a backtick cannot close the code span, a pipe cannot end the cell


def test_step_summary_is_appended_to_and_the_markdown_file_written(failing: dict, tmp_path: Path, monkeypatch) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("## an earlier step\n")
    monkeypatch.setenv(STEP_SUMMARY_ENV, str(summary))
    written = publish_markdown(failing, tmp_path / "compare.md")
    publish_markdown(failing)
    expected = render_markdown(failing)
    assert written == tmp_path / "compare.md" and written.read_text(encoding="utf-8") == expected
    assert summary.read_text(encoding="utf-8") == "## an earlier step\n" + expected + expected


def test_no_step_summary_outside_github_actions(failing: dict, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(STEP_SUMMARY_ENV, raising=False)
    assert publish_markdown(failing) is None
    assert list(tmp_path.iterdir()) == []


def test_each_gate_shows_the_threshold_it_was_judged_by(failing: dict) -> None:
    tuned = copy.deepcopy(failing)
    tuned["settings"]["speed"].update(max_memory_ratio=1.5, max_cold_start_ratio=3)
    tuned["settings"]["contract"]["fail_on_breaking"] = False
    text = html.unescape(" ".join(_parse(render_html(tuned)).text))
    assert "memory ≤ 1.5x, cold start ≤ 3x" in text
    assert "breaking changes warn (contract.fail_on_breaking: false)" in text
    assert "a constant candidate fails" in text
