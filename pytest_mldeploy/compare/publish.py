"""Where a finished comparison is shown besides the terminal: a Markdown file and the GitHub job summary."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from pytest_mldeploy.compare.markdown import render_markdown

#: GitHub Actions sets this to a file whose Markdown is shown on the run's summary page.
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def publish_markdown(data: dict, markdown_path: Optional[Path] = None) -> Optional[Path]:
    """Write the Markdown summary to `markdown_path` (when given) and append it to `$GITHUB_STEP_SUMMARY`
    (when set); returns the file written, if any."""
    markdown = render_markdown(data)
    if markdown_path is not None:
        Path(markdown_path).write_text(markdown, encoding="utf-8")
    summary = os.environ.get(STEP_SUMMARY_ENV)
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(markdown)
    return markdown_path
