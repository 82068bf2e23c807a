"""Which recorded open findings a Gone closes (clguard.reporting.securityhub.Gone): pure, over
every combination of type, principal and raise time, hostile strings included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from clguard.reporting.findings import FindingType
from clguard.reporting.securityhub import PER_PRINCIPAL, STILL_OPEN, Gone
from clguard.state.openfindings import condition, parse_time

TYPES = st.sampled_from([t.value for t in FindingType])
PRINCIPALS = st.one_of(
    st.none(),
    st.sampled_from(["arn:aws:iam::123456789012:role/A", "arn:aws:iam::123456789012:role/B"]),
    st.text(max_size=30),
)
TIMES = st.one_of(
    st.none(), st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))
)


def _document(finding_type: str, principal: str | None, raised: datetime | None) -> dict[str, Any]:
    fields = {"CustomLabelsGuard/finding_type": finding_type}
    if principal:
        fields["CustomLabelsGuard/principal_arn"] = principal
    document: dict[str, Any] = {"Id": "x", "ProductFields": fields}
    if raised is not None:
        document["CreatedAt"] = raised.strftime("%Y-%m-%dT%H:%M:%SZ")
    return document


@given(
    finding_type=TYPES,
    principal=PRINCIPALS,
    raised=TIMES,
    about=PRINCIPALS,
    keep=st.frozensets(TYPES),
    evidence=TIMES,
)
def test_a_gone_closes_only_what_it_names(
    *,
    finding_type: str,
    principal: str | None,
    raised: datetime | None,
    about: str | None,
    keep: frozenset[str],
    evidence: datetime | None,
) -> None:
    document = _document(finding_type, principal, raised)
    gone = Gone("why", about, keep=keep, evidence=evidence)
    closes = gone.closes(document)
    # Never a kept type, never another principal's, never one raised at or after the evidence
    if finding_type in keep:
        assert not closes
    if about is not None and (principal or None) != about:
        assert not closes
    if evidence is not None:
        recorded = condition(document).raised_at
        if recorded is None or recorded >= evidence:
            assert not closes
    # and everything else it names is closed
    if (
        finding_type not in keep
        and (about is None or (principal or None) == about)
        and (evidence is None or (raised is not None and raised.replace(microsecond=0) < evidence))
    ):
        assert closes


IDS = st.sampled_from(["a", "b", "c"])


@given(
    finding_id=IDS,
    finding_type=TYPES,
    ids=st.one_of(st.none(), st.frozensets(IDS)),
    keep_ids=st.frozensets(IDS),
    types=st.one_of(st.none(), st.frozensets(TYPES)),
)
def test_a_gone_by_ids_closes_only_those_it_names_and_never_those_it_keeps(
    *,
    finding_id: str,
    finding_type: str,
    ids: frozenset[str] | None,
    keep_ids: frozenset[str],
    types: frozenset[str] | None,
) -> None:
    document = {**_document(finding_type, None, None), "Id": finding_id}
    closes = Gone("why", types=types, ids=ids, keep_ids=keep_ids).closes(document)
    named = (ids is None or finding_id in ids) and (types is None or finding_type in types)
    assert closes == (named and finding_id not in keep_ids)


def test_a_decision_on_a_principal_keeps_open_only_types_about_principals() -> None:
    # Every status's still-open types are per-principal types, and "ok" keeps none
    assert STILL_OPEN["ok"] == frozenset()
    assert all(still <= PER_PRINCIPAL for still in STILL_OPEN.values())


def test_raise_times_parse_in_utc_or_not_at_all() -> None:
    assert parse_time("2026-12-07T10:00:00Z") == datetime(2026, 12, 7, 10, tzinfo=UTC)
    assert parse_time("2026-12-07T12:00:00.500+02:00") == datetime(2026, 12, 7, 10, 0, 0, 500_000, tzinfo=UTC)
    assert parse_time("2026-12-07T10:00:00") == datetime(2026, 12, 7, 10, tzinfo=UTC)
    for bad in ("", "yesterday", None, 5, "2026-13-01T00:00:00Z"):
        assert parse_time(bad) is None
    parsed = parse_time("2026-12-07T10:00:00Z")
    assert parsed is not None
    assert parsed < datetime(2026, 12, 7, 10, tzinfo=UTC) + timedelta(seconds=1)
