"""ARN parsing for the two kinds of ARN whose exact form guards security: KMS keys and IAM principals.

Key ARNs are compared exactly, after resolution (never by substring, unlike some tools).
A principal that does not parse here can never reach a key policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PARTITION = r"aws(?:-cn|-us-gov|-iso(?:-[a-z])?|-eusc)?"
# Region names: two letters first, or the sovereign cloud's four (eusc-de-east-1).
_REGION = r"(?:[a-z]{2}|eusc)(?:-[a-z]+)+-[0-9]"
_KEY_ID = r"(?:mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"

KEY_ARN_RE = re.compile(
    rf"^arn:(?P<partition>{_PARTITION}):kms:(?P<region>{_REGION}):"
    rf"(?P<account>[0-9]{{12}}):key/(?P<key_id>{_KEY_ID})$"
)
ALIAS_ARN_RE = re.compile(
    rf"^arn:(?P<partition>{_PARTITION}):kms:(?P<region>{_REGION}):"
    r"(?P<account>[0-9]{12}):(?P<alias>alias/[A-Za-z0-9/_-]{1,250})$"
)
KEY_ID_RE = re.compile(rf"^{_KEY_ID}$")
ALIAS_NAME_RE = re.compile(r"^alias/[A-Za-z0-9/_-]{1,250}$")

# IAM allows almost any printable ASCII in a path; we accept the conservative subset that real
# paths use (IAM Identity Center: /aws-reserved/sso.amazonaws.com/<region>/). No "*" or "?" can
# appear anywhere, so a parsed principal is never a wildcard.
_NAME = r"[A-Za-z0-9_+=,.@-]{1,64}"
_PATH = r"/(?:[A-Za-z0-9_+=,.@-]+/){0,32}"
PRINCIPAL_ARN_RE = re.compile(
    rf"^arn:(?P<partition>{_PARTITION}):iam::(?P<account>[0-9]{{12}}):"
    rf"(?P<kind>role|user)(?P<path>{_PATH})(?P<name>{_NAME})$"
)
MAX_PRINCIPAL_ARN = 2048


@dataclass(frozen=True, slots=True)
class KeyArn:
    arn: str
    partition: str
    region: str
    account: str
    key_id: str


@dataclass(frozen=True, slots=True)
class PrincipalArn:
    """An IAM role or user ARN (with its path), the only principal form we ever add."""

    arn: str
    partition: str
    account: str
    kind: str  # "role" | "user"
    path: str
    name: str


def parse_key_arn(value: str) -> KeyArn | None:
    match = KEY_ARN_RE.fullmatch(value)
    if match is None:
        return None
    return KeyArn(
        arn=value,
        partition=match["partition"],
        region=match["region"],
        account=match["account"],
        key_id=match["key_id"],
    )


def is_key_reference(value: str) -> bool:
    """A value CreateProjectVersion accepts as KmsKeyId: key id, key ARN, alias name, alias ARN."""
    return bool(
        KEY_ID_RE.fullmatch(value)
        or KEY_ARN_RE.fullmatch(value)
        or ALIAS_NAME_RE.fullmatch(value)
        or ALIAS_ARN_RE.fullmatch(value)
    )


def parse_principal_arn(value: str) -> PrincipalArn | None:
    if len(value) > MAX_PRINCIPAL_ARN:
        return None
    match = PRINCIPAL_ARN_RE.fullmatch(value)
    if match is None:
        return None
    return PrincipalArn(
        arn=value,
        partition=match["partition"],
        account=match["account"],
        kind=match["kind"],
        path=match["path"],
        name=match["name"],
    )


def account_of(arn: str) -> str | None:
    """The account field of any ARN, or None."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return None
    return parts[4] if re.fullmatch(r"[0-9]{12}", parts[4]) else None


def partition_of(arn: str) -> str | None:
    """The partition field of any ARN (``aws``, ``aws-cn``, ``aws-us-gov`` …), or None."""
    parts = arn.split(":", 2)
    return parts[1] if len(parts) == 3 and parts[0] == "arn" and parts[1] else None


def partition_of_region(region: str) -> str:
    """The partition of a Region name (China, GovCloud, ISO, EU sovereign; else ``aws``)."""
    # botocore's partitions.json: us-iso-* aws-iso, us-isob-* aws-iso-b, us-isof-* aws-iso-f,
    # eu-isoe-* aws-iso-e.
    prefixes = (
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-isof-", "aws-iso-f"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-iso-", "aws-iso"),
    )
    for prefix, partition in prefixes:
        if region.startswith(prefix):
            return partition
    return "aws-eusc" if region.startswith("eusc-") else "aws"
