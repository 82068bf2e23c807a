"""Which event sources' management write events a trail records, read from its GetEventSelectors
answer (the documented shapes: CloudTrail API reference, EventSelector and AdvancedFieldSelector).
The reading is conservative: it never says a source is recorded when every selector leaves it out."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clguard.adapters import operator
from clguard.usecases.doctor import KMS, REKOGNITION

MANAGEMENT = {"Field": "eventCategory", "Equals": ["Management"]}


def trail(response: dict[str, Any]) -> operator.Trail:
    management, buckets = operator.read_event_selectors(response)
    return operator.Trail("arn:aws:cloudtrail:us-east-1:111122223333:trail/t", "t", True, management, buckets)


def test_a_trail_without_selectors_records_every_source() -> None:
    # Given a trail created without selectors (CloudTrail's default), Then every source's writes are recorded
    assert trail({}).records_writes_from(REKOGNITION)
    assert trail({"EventSelectors": [], "AdvancedEventSelectors": []}).records_writes_from(KMS)


def test_the_classic_exclusion_of_kms_keeps_rekognition() -> None:
    # Given a classic selector that excludes KMS (a common cost setting)
    t = trail({"EventSelectors": [{"ReadWriteType": "WriteOnly", "ExcludeManagementEventSources": [KMS]}]})
    # Then Rekognition's writes are recorded, KMS's are not, and the reason names the setting
    assert t.records_writes_from(REKOGNITION)
    assert not t.records_writes_from(KMS)
    assert t.excluding(KMS) == f'EventSelectors[0]: ExcludeManagementEventSources ["{KMS}"]'


def test_read_only_and_no_management_selectors_record_no_write() -> None:
    # Given selectors that record reads only, or no management event at all
    for response in (
        {"EventSelectors": [{"ReadWriteType": "ReadOnly"}]},
        {"EventSelectors": [{"IncludeManagementEvents": False, "ReadWriteType": "All"}]},
        {"AdvancedEventSelectors": [{"FieldSelectors": [MANAGEMENT, {"Field": "readOnly", "Equals": ["true"]}]}]},
        {"AdvancedEventSelectors": [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}]}]},
    ):
        # Then no source's writes are recorded
        assert not trail(response).records_writes_from(REKOGNITION), response


def test_advanced_event_source_conditions() -> None:
    # Given advanced management selectors with each documented operator on eventSource
    def records(condition: dict[str, Any], source: str = REKOGNITION) -> bool:
        field = {"Field": "eventSource", **condition}
        return trail({"AdvancedEventSelectors": [{"FieldSelectors": [MANAGEMENT, field]}]}).records_writes_from(source)

    # Then each admits exactly the sources it names
    assert not records({"NotEquals": [REKOGNITION]})
    assert records({"NotEquals": [KMS]})
    assert records({"Equals": [REKOGNITION, KMS]})
    assert not records({"Equals": [KMS]})
    assert not records({"NotStartsWith": ["rekognition."]})
    assert records({"StartsWith": ["rek"]})
    assert not records({"EndsWith": [".example.com"]})
    assert records({"NotEndsWith": [".example.com"]})
    # And where it cannot tell, it says not recorded: an unknown operator, a field it does not judge
    assert not records({"Matches": [REKOGNITION]})
    name = {"Field": "eventName", "Equals": ["CreateProjectVersion"]}
    assert not trail({"AdvancedEventSelectors": [{"FieldSelectors": [MANAGEMENT, name]}]}).records_writes_from(
        REKOGNITION
    )


def test_one_selector_that_records_the_source_is_enough() -> None:
    # Given one selector that leaves Rekognition out and another that records every management write
    response = {
        "AdvancedEventSelectors": [
            {
                "Name": "all but ML",
                "FieldSelectors": [MANAGEMENT, {"Field": "eventSource", "NotEquals": [REKOGNITION]}],
            },
            {"Name": "writes", "FieldSelectors": [MANAGEMENT, {"Field": "readOnly", "Equals": ["false"]}]},
        ]
    }
    # Then the source is recorded (CloudTrail records an event any selector matches)
    assert trail(response).records_writes_from(REKOGNITION)


# --- property: never recorded when every selector leaves the source out -------------------------

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOURCES = st.sampled_from([REKOGNITION, KMS, "rdsdata.amazonaws.com", "s3.amazonaws.com"])
OTHER = st.text(alphabet="abcikmnorst.-", min_size=1, max_size=12)


def _excluding_source_condition(draw: st.DrawFn, source: str) -> dict[str, Any]:
    """An eventSource condition that leaves ``source`` out, by any documented operator."""
    others = draw(st.lists(OTHER.filter(lambda o: o != source), max_size=2))
    cut = draw(st.integers(min_value=1, max_value=len(source)))
    kind = draw(st.sampled_from(["NotEquals", "NotStartsWith", "NotEndsWith", "Equals", "StartsWith", "EndsWith"]))
    values = {
        "NotEquals": [*others, source],
        "NotStartsWith": [*others, source[:cut]],
        "NotEndsWith": [*others, source[-cut:]],
        "Equals": others or ["other.amazonaws.com"],
        "StartsWith": [o for o in others if not source.startswith(o)] or ["zzz"],
        "EndsWith": [o for o in others if not source.endswith(o)] or ["zzz"],
    }[kind]
    return {"Field": "eventSource", kind: draw(st.permutations(values))}


@st.composite
def excluding_advanced(draw: st.DrawFn, source: str) -> dict[str, Any]:
    admitting = [
        {"Field": "readOnly", "Equals": ["false"]},
        {"Field": "eventSource", "NotEquals": ["other.amazonaws.com"]},
    ]
    how = draw(st.sampled_from(["data", "read-only", "source"]))
    if how == "data":
        fields = [
            {"Field": "eventCategory", "Equals": ["Data"]},
            {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
        ]
    elif how == "read-only":
        fields = [
            MANAGEMENT,
            {"Field": "readOnly", "Equals": ["true"]},
            *draw(st.lists(st.sampled_from(admitting[1:]), max_size=2)),
        ]
    else:
        fields = [
            MANAGEMENT,
            _excluding_source_condition(draw, source),
            *draw(st.lists(st.sampled_from(admitting), max_size=2)),
        ]
    selector: dict[str, Any] = {"FieldSelectors": draw(st.permutations(fields))}
    if draw(st.booleans()):
        selector["Name"] = draw(st.text(max_size=8))
    return selector


@st.composite
def excluding_classic(draw: st.DrawFn, source: str) -> dict[str, Any]:
    how = draw(st.sampled_from(["no management", "read-only", "excluded"]))
    if how == "no management":
        return {"IncludeManagementEvents": False, "ReadWriteType": draw(st.sampled_from(["All", "WriteOnly"]))}
    if how == "read-only":
        return {"ReadWriteType": "ReadOnly"}
    others = draw(st.lists(OTHER, max_size=2))
    selector: dict[str, Any] = {"ExcludeManagementEventSources": draw(st.permutations([*others, source]))}
    if draw(st.booleans()):
        selector["ReadWriteType"] = draw(st.sampled_from(["All", "WriteOnly"]))
    return selector


@st.composite
def excluding_everywhere(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    source = draw(SOURCES)
    classic = draw(st.lists(excluding_classic(source), max_size=3))
    advanced = draw(st.lists(excluding_advanced(source), min_size=0 if classic else 1, max_size=3))
    return source, {"EventSelectors": classic, "AdvancedEventSelectors": advanced}


@PROPERTY
@given(excluding_everywhere())
def test_a_source_every_selector_leaves_out_is_never_said_recorded(case: tuple[str, dict[str, Any]]) -> None:
    # Given selectors (at least one) each of which leaves the source's management writes out
    source, response = case
    # When the trail's selectors are read
    t = trail(response)
    # Then the source is not said recorded, and the reason names a selector
    assert not t.records_writes_from(source)
    assert "EventSelectors[" in t.excluding(source) or not t.management


@PROPERTY
@given(excluding_everywhere())
def test_adding_a_selector_of_every_management_write_records_the_source(case: tuple[str, dict[str, Any]]) -> None:
    # Given the same selectors, and one more that records every management write event
    source, response = case
    response["AdvancedEventSelectors"] = [*response["AdvancedEventSelectors"], {"FieldSelectors": [MANAGEMENT]}]
    # Then the source is recorded
    assert trail(response).records_writes_from(source)
