"""The audit's HTML report, rendered in a real headless Chromium (Debian's package): it renders,
and its tables (built by the page's own JavaScript) hold the run's numbers."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from clguard.reporting.auditreport import render_html
from tests.auditrun import REPORTS, run_audit, summaries
from tests.world import BUCKET, World

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is missing: run scripts/ensure-chromium.sh (make test does)")
    return found


class Tables(HTMLParser):
    """The rendered DOM's tables by id: rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None


def rendered_tables(page: Path, tmp_path: Path) -> dict[str, list[list[str]]]:
    result = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    parser = Tables()
    parser.feed(result.stdout)
    return parser.tables


def test_the_report_renders_in_chromium_with_the_right_counts(audited: World, tmp_path: Path) -> None:
    # Given an audited bucket: 3 SSE-S3 objects, 2 unencrypted ones (fixed), 1 under a managed CMK
    key = audited.key()
    for index in range(3):
        audited.put(f"images/s3-{index}.jpg", ServerSideEncryption="AES256")
    audited.put_legacy("images/old-1.jpg")
    audited.put_legacy("images/old-2.jpg")
    audited.put("images/cmk.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    run_audit(audited)
    [summary] = summaries(audited)
    bucket, _, html_key = summary["report"]["html"].removeprefix("s3://").partition("/")
    assert bucket == REPORTS
    page = tmp_path / "report.html"
    page.write_bytes(audited.s3.get_object(Bucket=bucket, Key=html_key)["Body"].read())

    # When the page is opened in headless Chromium and its DOM read back
    tables = rendered_tables(page, tmp_path)

    # Then the buckets table, built by the page's script, holds the run's numbers
    header, *rows = tables["buckets"]
    assert header == ["bucket", "objects", "compliant", "SSE-KMS", "SSE-S3", "none", "OBJECT_UNENCRYPTED", "gone"]
    assert rows == [[BUCKET, "6", "4", "1", "3", "2", "2", "0"]]
    # And the keys table lists the CMK in use
    assert [row[0] for row in tables["keys"][1:]] == [key] * (len(tables["keys"]) - 1)
    assert len(tables["keys"]) > 1


def test_without_a_browser_the_tables_are_empty(tmp_path: Path) -> None:
    # Given a report's page as served (no script run)
    data = {
        "run_id": "r",
        "buckets": [{"name": "b", "objects": 1, "compliant": 1, "by_encryption": {}, "by_condition": {}, "gone": 0}],
        "keys": [],
        "trainings": [],
        "notes": [],
    }
    page = render_html(data)

    # When its static markup is parsed (what a reader without JavaScript would see)
    parser = Tables()
    parser.feed(page)

    # Then the tables are empty: the numbers need a real browser, which is what the test above uses
    assert parser.tables["buckets"] == []
    assert "</script" not in page.split('id="report-data">')[1].split("</script>")[0]
