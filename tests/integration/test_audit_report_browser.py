"""The audit's HTML report in a real headless Chromium (Debian's package), at 1,400 and 400 px,
with JavaScript on and off: rows, totals, trend and exports are on the page as the server wrote
it; the page never scrolls sideways; axe-core (npm, pinned) finds no serious violation; and a
hostile object key is shown, never obeyed. Screenshots: test-artifacts/audit-report/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clguard.reporting import htmlparts
from tests.auditrun import REPORTS, run_audit, summaries
from tests.browser import Page
from tests.world import ACCOUNT, BUCKET, World

HOSTILE_KEY = "images/<!--<script>\u202egpj.exe</script>.jpg"
SERIOUS = ("serious", "critical")


def download(world: World, summary: dict[str, Any], folder: Path) -> Path:
    """The report and its exports, as they sit side by side in S3."""
    for url in summary["report"].values():
        bucket, _, key = url.removeprefix("s3://").partition("/")
        assert bucket == REPORTS
        (folder / key.rsplit("/", 1)[1]).write_bytes(world.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return folder / "report.html"


@pytest.fixture
def report_page(audited: World, tmp_path: Path) -> Path:
    """A seeded world audited twice in report mode: 3 SSE-S3 objects, 1 under a managed CMK, 2
    unencrypted (one under a hostile key) left open."""
    key = audited.key()
    for index in range(3):
        audited.put(f"images/s3-{index}.jpg", ServerSideEncryption="AES256")
    audited.put("images/cmk.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    audited.put_legacy("images/old.jpg")
    audited.put_legacy(HOSTILE_KEY)
    audited.env_set(REMEDIATION_MODE="report")
    run_audit(audited)
    run_audit(audited)
    return download(audited, summaries(audited)[-1], tmp_path)


def texts(page: Page, selector: str) -> list[str]:
    value: list[str] = page.evaluate(
        f"Array.prototype.map.call(document.querySelectorAll({selector!r}), function (e) {{ return e.textContent; }})"
    )
    return value


@pytest.mark.parametrize("width", [1400, 400])
def test_the_report_reads_right_in_chromium_with_and_without_javascript(report_page: Path, width: int) -> None:
    for javascript in (True, False):
        # When the page is opened in headless Chromium at this width, scripts on or off
        with Page(report_page, width=width, javascript=javascript) as page:
            mode = "js" if javascript else "nojs"
            page.screenshot(f"report-{width}-{mode}")

            # Then each open condition is a row, the hostile key shown as text (visible escapes)
            resources = texts(page, "#rows-open-OBJECT_UNENCRYPTED tbody tr td:first-child")
            assert sorted(resources) == sorted(
                [f"s3://{BUCKET}/images/old.jpg", f"s3://{BUCKET}/{htmlparts.visible(HOSTILE_KEY)}"]
            ), mode
            assert page.evaluate("document.querySelectorAll('body script').length") == 2  # the page's own only
            # And the page's own style applies under its Content-Security-Policy (allowed by hash)
            assert page.evaluate("getComputedStyle(document.body).maxWidth") == "1400px"
            # And the totals, the buckets table and the trend (two runs) are there
            assert texts(page, "#totals li[data-total=open] strong") == ["2"]
            header = texts(page, "#buckets thead th")
            assert header == [
                "bucket",
                "objects",
                "compliant",
                "SSE-KMS",
                "SSE-S3",
                "none",
                "OBJECT_UNENCRYPTED",
                "gone",
            ]
            assert texts(page, "#buckets tbody tr:first-child > *") == [BUCKET, "6", "4", "1", "3", "2", "2", "0"]
            # And the run per account (one account here): its buckets, objects, compliant, conditions
            assert texts(page, "#accounts tbody tr:first-child > *")[:5] == [ACCOUNT, "1", "6", "4", "2"]
            assert page.evaluate("document.querySelectorAll('#trend-chart svg polyline').length") == 1
            assert texts(page, "#trend tbody tr td:first-of-type") == ["2", "2"]
            # And the exports are linked by the names they have beside the page
            hrefs = page.evaluate(
                "Array.prototype.map.call(document.querySelectorAll('#exports a'), a => a.getAttribute('href'))"
            )
            assert hrefs == ["rows.csv", "rows.jsonl", "report.json"]
            assert all((report_page.parent / href).stat().st_size > 0 for href in hrefs)
            # And the page does not scroll sideways (wide tables scroll inside their own box)
            layout = page.layout()
            assert layout["innerWidth"] == width
            assert layout["scrollWidth"] <= width, layout
            # And sorting exists only where scripts run, and works
            buttons = page.evaluate("document.querySelectorAll('#rows-open-OBJECT_UNENCRYPTED thead button').length")
            if javascript:
                assert buttons > 0
                page.evaluate("document.querySelector('#rows-open-OBJECT_UNENCRYPTED thead button').click()")
                first = texts(page, "#rows-open-OBJECT_UNENCRYPTED tbody tr td:first-child")
                page.evaluate("document.querySelector('#rows-open-OBJECT_UNENCRYPTED thead button').click()")
                assert texts(page, "#rows-open-OBJECT_UNENCRYPTED tbody tr td:first-child") == first[::-1]
            else:
                assert buttons == 0
            # And axe-core finds no serious or critical accessibility violation
            violations = [v for v in page.axe_violations() if v["impact"] in SERIOUS]
            assert violations == [], violations
