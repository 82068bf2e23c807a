"""The audit report's page shows every string from outside as text, in every field, whatever it
holds (issue 20 item 5: one object key such as ``<!--<script>`` used to blank the whole page)."""

from __future__ import annotations

import html
import json
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clguard.reporting import auditdata, auditpage, auditreport, htmlparts, pagestyle
from tests.badinput.strings import HOSTILE

ROW_STRINGS = tuple(name for name in auditreport.ROW_FIELDS if name not in ("new", "section", "severity"))


class Structure(HTMLParser):
    """The page as a parser reads it: its elements and attribute names, the texts, the scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[str, ...]]] = []
        self.texts: list[str] = []
        self.attributes: list[str] = []
        self.scripts: list[tuple[str, str]] = []
        self._in_script: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, tuple(name for name, _ in attrs)))
        self.attributes.extend(value or "" for _, value in attrs)
        if tag == "script":
            self._in_script = dict(attrs).get("type") or "text/javascript"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = None

    def handle_data(self, data: str) -> None:
        if self._in_script is not None:
            self.scripts.append((self._in_script, data))
        else:
            self.texts.append(data)


def page_with(value: str) -> str:
    """A report where every string field (data, every row field, trend, notes) is ``value``."""
    row: dict[str, Any] = {name: value for name in ROW_STRINGS}
    rows = [
        {**row, "section": "open", "severity": "HIGH", "new": True},
        {**row, "section": "fixed", "severity": "HIGH", "new": True},
        {**row, "section": "accepted", "severity": "MEDIUM", "new": False},
    ]
    data = {
        "schema": auditdata.SCHEMA,
        "run_id": value,
        "account": value,
        "region": value,
        "started_at": value,
        "duration_seconds": value,
        "mode": value,
        "requirement": value,
        "objects_listed": 3,
        "buckets": [
            {
                "name": value,
                "objects": 3,
                "compliant": 1,
                "by_encryption": {value: 3},
                "by_condition": {value: 2, "OK": 1},
                "gone": 0,
            }
        ],
        "keys": [
            {
                "arn": value,
                "alias": value,
                "state": value,
                "principals": [{"arn": value, "how": value}],
                "lacking": [value],
            },
        ],
        "trainings": [{"arn": value, "status_message": value, "diagnosis": value, "fixed": False}],
        "notes": [value],
        "accounts": [{"account": value, "buckets": [value], "objects": 3, "compliant": 1, "by_condition": {value: 2}}],
        "exports": {"csv": value, "jsonl": value, "json": value},
    }
    history = [{"run_id": value, "started_at": value, "open_by_type": {value: 2}}]
    return auditpage.render(data, rows, history)


def structure(page: str) -> Structure:
    parser = Structure()
    parser.feed(page)
    parser.close()
    return parser


BASELINE = structure(page_with("PLACEHOLDER"))


def assert_shown_not_obeyed(value: str) -> None:
    page = page_with(value)
    parsed = structure(page)
    # Then the page has exactly the elements and attributes of a page of harmless strings
    assert parsed.tags == BASELINE.tags
    # And its scripts are the page's own two: the data (valid JSON) and the sorting script
    kinds = [kind for kind, _ in parsed.scripts]
    assert kinds == [kind for kind, _ in BASELINE.scripts]
    data = json.loads(next(text for kind, text in parsed.scripts if kind == "application/json"))
    assert data["run_id"] == value
    assert dict(parsed.scripts)["text/javascript"] == dict(BASELINE.scripts)["text/javascript"]
    # And the value is shown, as text, the way a person should see it (invisible characters
    # as \uXXXX, long values cut)
    shown = htmlparts.visible(value)
    assert sum(text.count(shown) for text in parsed.texts) >= len(ROW_STRINGS)
    assert not any(("\u202e" in t or "\u200b" in t or "\x00" in t) for t in parsed.texts)


@pytest.mark.parametrize("value", HOSTILE, ids=[repr(v[:24]) for v in HOSTILE])
def test_every_field_shows_a_hostile_string_as_text(value: str) -> None:
    # Given a report whose every string field holds the hostile string
    # When it is rendered and parsed as a browser's HTML parser would
    # Then nothing of the string became markup, script or attribute
    assert_shown_not_obeyed(value)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=80))
def test_any_string_is_shown_and_never_obeyed(value: str) -> None:
    # Given any string at all (property): same as the corpus
    assert_shown_not_obeyed(value)


def test_the_inline_data_cannot_close_or_comment_out_its_script() -> None:
    # Given a value with every sequence that changes how an inline script element is parsed
    value = "<!--<script></script></SCRIPT -->\u2028&"

    # When it is put in the page's inline JSON
    encoded = htmlparts.script_json({"v": value})

    # Then none of < > & or the line separators appears raw, and the JSON still decodes to the value
    assert not set(encoded) & {"<", ">", "&", "\u2028", "\u2029"}
    assert json.loads(encoded) == {"v": value}


def test_the_page_allows_only_its_own_style_and_script() -> None:
    # Given a rendered page
    page = page_with("x")

    # Then its Content-Security-Policy allows nothing from anywhere, and its own style and
    # script only by hash; and no element carries an inline event handler or style attribute
    assert f'content="{html.escape(pagestyle.CSP)}"' in page
    assert "default-src 'none'" in pagestyle.CSP
    assert "'unsafe-inline'" not in pagestyle.CSP
    assert "'unsafe-eval'" not in pagestyle.CSP
    assert all(not name.startswith("on") and name != "style" for _, names in BASELINE.tags for name in names)


def test_a_long_value_is_cut_on_the_page_with_what_was_left_out() -> None:
    # Given a value far over what a page shows
    value = "k" * (htmlparts.TEXT_MAX + 1234)

    # Then the page shows its start and says how much was left out (the exports have it whole)
    assert htmlparts.visible(value) == "k" * htmlparts.TEXT_MAX + "… (1,234 more characters)"
