"""ARN parsing: the exact forms of KMS key and IAM principal ARNs that guard security."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clguard.rules.arns import (
    MAX_PRINCIPAL_ARN,
    account_of,
    is_key_reference,
    parse_key_arn,
    parse_principal_arn,
    partition_of,
)

ACCOUNT = "123456789012"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY_ID}"
MRK_ARN = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/mrk-1234abcd12ab34cd56ef1234567890ab"


@pytest.mark.parametrize(
    ("arn", "partition", "region", "key_id"),
    [
        (KEY_ARN, "aws", "us-east-1", KEY_ID),
        (MRK_ARN, "aws", "eu-west-1", "mrk-1234abcd12ab34cd56ef1234567890ab"),
        (f"arn:aws-cn:kms:cn-north-1:{ACCOUNT}:key/{KEY_ID}", "aws-cn", "cn-north-1", KEY_ID),
        (f"arn:aws-us-gov:kms:us-gov-west-1:{ACCOUNT}:key/{KEY_ID}", "aws-us-gov", "us-gov-west-1", KEY_ID),
        (f"arn:aws:kms:ap-southeast-2:{ACCOUNT}:key/{KEY_ID}", "aws", "ap-southeast-2", KEY_ID),
    ],
)
def test_parse_key_arn(arn: str, partition: str, region: str, key_id: str) -> None:
    # Given a KMS key ARN
    # When parsed
    parsed = parse_key_arn(arn)
    # Then every part is extracted
    assert parsed is not None
    assert (parsed.arn, parsed.partition, parsed.region, parsed.account, parsed.key_id) == (
        arn,
        partition,
        region,
        ACCOUNT,
        key_id,
    )


@pytest.mark.parametrize(
    "value",
    [
        KEY_ID,
        "alias/custom-labels-training",
        f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/custom-labels-training",
        f"arn:aws:kms:us-east-1:12345678901:key/{KEY_ID}",  # 11-digit account
        f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY_ID.upper()}",
        f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY_ID}x",
        f"arn:aws:kms::{ACCOUNT}:key/{KEY_ID}",
        f"arn:aws:s3:us-east-1:{ACCOUNT}:key/{KEY_ID}",
        f" {KEY_ARN}",
        f"{KEY_ARN} ",
        f"arn:aws:kms:us-east-1:{ACCOUNT}:key/*",
        "",
    ],
)
def test_parse_key_arn_rejects(value: str) -> None:
    # Given something that is not exactly a key ARN
    # When parsed
    # Then None
    assert parse_key_arn(value) is None


@pytest.mark.parametrize(
    ("value", "is_reference"),
    [
        (KEY_ID, True),
        (KEY_ARN, True),
        (MRK_ARN, True),
        ("alias/custom-labels-training", True),
        (f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/custom-labels-training", True),
        ("alias/", False),
        ("custom-labels-training", False),
        ("alias/bad name", False),
        ("", False),
        (f"arn:aws:kms:us-east-1:{ACCOUNT}:key/not-a-key", False),
    ],
)
def test_is_key_reference(value: str, is_reference: bool) -> None:
    # Given a KmsKeyId value from CreateProjectVersion
    # When checked
    # Then key ids, key ARNs, alias names and alias ARNs are references; nothing else is
    assert is_key_reference(value) is is_reference


@pytest.mark.parametrize(
    ("arn", "kind", "path", "name"),
    [
        (f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer", "role", "/ml/", "CustomLabelsTrainer"),
        (f"arn:aws:iam::{ACCOUNT}:role/Plain", "role", "/", "Plain"),
        (f"arn:aws:iam::{ACCOUNT}:user/ml-engineer", "user", "/", "ml-engineer"),
        (
            f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/us-east-1/AWSReservedSSO_ML_0123",
            "role",
            "/aws-reserved/sso.amazonaws.com/us-east-1/",
            "AWSReservedSSO_ML_0123",
        ),
        (f"arn:aws:iam::{ACCOUNT}:role/a/b/c/n+=,.@_-", "role", "/a/b/c/", "n+=,.@_-"),
    ],
)
def test_parse_principal_arn(arn: str, kind: str, path: str, name: str) -> None:
    # Given an IAM role or user ARN
    # When parsed
    parsed = parse_principal_arn(arn)
    # Then kind, path and name are extracted
    assert parsed is not None
    assert (parsed.account, parsed.kind, parsed.path, parsed.name, parsed.partition) == (
        ACCOUNT,
        kind,
        path,
        name,
        "aws",
    )


@pytest.mark.parametrize(
    "value",
    [
        "*",
        f"arn:aws:iam::{ACCOUNT}:root",
        f"arn:aws:iam::{ACCOUNT}:role/*",
        f"arn:aws:iam::{ACCOUNT}:role/ml/*",
        f"arn:aws:iam::{ACCOUNT}:role/*/Trainer",
        f"arn:aws:iam::{ACCOUNT}:role/Train?r",
        f"arn:aws:iam::{ACCOUNT}:group/trainers",
        f"arn:aws:iam::{ACCOUNT}:role/",
        f"arn:aws:iam::{ACCOUNT}:role/" + "n" * 65,
        f"arn:aws:sts::{ACCOUNT}:assumed-role/CustomLabelsTrainer/session-1",
        f"arn:aws:iam:us-east-1:{ACCOUNT}:role/R",
        "arn:aws:iam::1234:role/R",
        "rekognition.amazonaws.com",
        ACCOUNT,
        f"arn:aws:iam::{ACCOUNT}:role/R ",
        f"arn:aws:iam::{ACCOUNT}:role/R\x00",
        f"arn:aws:iam::{ACCOUNT}:role/ml/R/",
        "",
    ],
)
def test_parse_principal_arn_rejects(value: str) -> None:
    # Given something that is not a role/user ARN
    # When parsed
    # Then None
    assert parse_principal_arn(value) is None


def test_parse_principal_arn_rejects_overlong_input_quickly() -> None:
    # Given a "path" far longer than any ARN
    value = f"arn:aws:iam::{ACCOUNT}:role/" + "a/" * 100_000 + "R"
    # When parsed
    # Then None (the length cap stops it before the regex)
    assert len(value) > MAX_PRINCIPAL_ARN
    assert parse_principal_arn(value) is None


def test_trailing_newline_is_not_an_arn() -> None:
    # Given ARNs followed by a newline
    # When parsed
    # Then neither is accepted (the parsed value would differ from the real ARN)
    assert parse_principal_arn(f"arn:aws:iam::{ACCOUNT}:role/R\n") is None
    assert parse_key_arn(f"{KEY_ARN}\n") is None


@pytest.mark.parametrize(
    ("arn", "account"),
    [
        (KEY_ARN, ACCOUNT),
        (f"arn:aws:iam::{ACCOUNT}:role/R", ACCOUNT),
        ("arn:aws:sns:us-east-1:210987654321:topic", "210987654321"),
        ("arn:aws:s3:::bucket", None),
        ("arn:aws:iam::12345:role/R", None),
        ("not an arn", None),
        ("arn:aws:iam", None),
        ("", None),
    ],
)
def test_account_of(arn: str, account: str | None) -> None:
    # Given any ARN-like string
    # When its account is read
    # Then it is the 12-digit account field or None
    assert account_of(arn) == account


names = st.from_regex(r"[A-Za-z0-9_+=,.@-]{1,64}", fullmatch=True)
path_segments = st.lists(st.from_regex(r"[A-Za-z0-9_+=,.@-]{1,12}", fullmatch=True), max_size=4)


@settings(max_examples=200, deadline=None)
@given(
    partition=st.sampled_from(["aws", "aws-cn", "aws-us-gov"]),
    account=st.from_regex(r"[0-9]{12}", fullmatch=True),
    kind=st.sampled_from(["role", "user"]),
    segments=path_segments,
    name=names,
)
def test_principal_arns_round_trip(partition: str, account: str, kind: str, segments: list[str], name: str) -> None:
    # Given an IAM role/user ARN built from valid parts
    path = "/" + "".join(f"{s}/" for s in segments)
    arn = f"arn:{partition}:iam::{account}:{kind}{path}{name}"
    # When parsed
    parsed = parse_principal_arn(arn)
    # Then the parts come back exactly, and recompose to the ARN
    assert parsed is not None
    assert (parsed.partition, parsed.account, parsed.kind, parsed.path, parsed.name) == (
        partition,
        account,
        kind,
        path,
        name,
    )
    assert f"arn:{parsed.partition}:iam::{parsed.account}:{parsed.kind}{parsed.path}{parsed.name}" == arn


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.text(max_size=100), st.text(max_size=40).map(lambda s: f"arn:aws:iam::{ACCOUNT}:role/{s}")))
def test_parsed_principals_never_contain_wildcards(value: str) -> None:
    # Given any string
    # When parsed as a principal
    parsed = parse_principal_arn(value)
    # Then a parsed principal is never a wildcard, and is a role or user of a 12-digit account
    if parsed is not None:
        assert "*" not in value
        assert "?" not in value
        assert parsed.kind in {"role", "user"}
        assert parsed.account.isdigit()
        assert len(parsed.account) == 12


def _role_arn_of_length(length: int) -> str:
    """A valid role ARN of exactly ``length`` characters (path segments fill the middle)."""
    head, name = f"arn:aws:iam::{ACCOUNT}:role/", "trainer"
    room = length - len(head) - len(name)
    segments, left = [], room
    while left > 0:
        size = min(left, 64) - 1  # each segment is "x…x/"
        if size < 1:  # one character left: widen the name instead
            name += "x" * left
            break
        segments.append("p" * size + "/")
        left -= size + 1
    arn = head + "".join(segments) + name
    assert len(arn) == length
    return arn


def test_a_principal_arn_at_the_length_bound_parses_and_one_past_it_does_not() -> None:
    # Given valid role ARNs of exactly the bound and one character more
    at_bound, past = _role_arn_of_length(MAX_PRINCIPAL_ARN), _role_arn_of_length(MAX_PRINCIPAL_ARN + 1)

    # When parsed / Then the bound is inclusive: 2,048 characters parse, 2,049 do not
    parsed = parse_principal_arn(at_bound)
    assert parsed is not None
    assert parsed.arn == at_bound
    assert parse_principal_arn(past) is None


def test_every_field_of_a_principal_arn_is_read() -> None:
    # Given an IAM Identity Center role ARN of the China partition
    arn = f"arn:aws-cn:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/cn-north-1/AWSReservedSSO_Trainer_0123"

    # When parsed
    parsed = parse_principal_arn(arn)

    # Then partition, account, kind, path and name are each the ARN's own
    assert parsed is not None
    assert (parsed.arn, parsed.partition, parsed.account, parsed.kind, parsed.path, parsed.name) == (
        arn,
        "aws-cn",
        ACCOUNT,
        "role",
        "/aws-reserved/sso.amazonaws.com/cn-north-1/",
        "AWSReservedSSO_Trainer_0123",
    )


@pytest.mark.parametrize(
    ("arn", "account"),
    [
        (KEY_ARN, ACCOUNT),
        (f"arn:aws:iam::{ACCOUNT}:role/a:b:c", ACCOUNT),  # colons in the resource part
        (f"arn:aws:iam::{ACCOUNT}:role", ACCOUNT),  # six fields exactly
        (f"arn:aws:iam::{ACCOUNT}", None),  # five fields
        ("arn:aws:s3:::training-data/a.jpg", None),  # S3 ARNs carry no account
        (f"arn:aws:iam::{ACCOUNT[:-1]}:role/r", None),  # eleven digits
        (f"arn:aws:iam::{ACCOUNT}0:role/r", None),  # thirteen digits
        ("arn:aws:iam::12345678901a:role/r", None),
        (f"ARN:aws:iam::{ACCOUNT}:role/r", None),  # "arn" is lowercase
        (f"xarn:aws:iam::{ACCOUNT}:role/r", None),
        ("", None),
    ],
)
def test_account_of_reads_the_fifth_field_only_when_it_is_an_account(arn: str, account: str | None) -> None:
    # Given an ARN (or not) / When its account is read / Then it is the 12-digit fifth field, else None
    assert account_of(arn) == account


@pytest.mark.parametrize(
    ("arn", "partition"),
    [
        (KEY_ARN, "aws"),
        (f"arn:aws-cn:kms:cn-north-1:{ACCOUNT}:key/{KEY_ID}", "aws-cn"),
        (f"arn:aws-us-gov:iam::{ACCOUNT}:role/r", "aws-us-gov"),
        ("arn:aws-eusc:kms", "aws-eusc"),  # three fields are enough
        ("arn:aws", None),  # two fields
        ("arn::kms:us-east-1", None),  # an empty partition
        ("ARN:aws:kms", None),
        ("urn:aws:kms", None),
        ("", None),
    ],
)
def test_partition_of_reads_the_second_field_of_an_arn(arn: str, partition: str | None) -> None:
    # Given an ARN (or not) / When its partition is read / Then it is the non-empty second field, else None
    assert partition_of(arn) == partition
