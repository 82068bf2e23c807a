"""What a member account declares about itself (docs/architecture.md §2, "Organizations").

A member's own ``member.yaml`` stack writes one SSM parameter, ``/custom-labels-guard/member``,
that the member role may read: its training buckets, its re-encryption key and its training
principals. The centre reads it through that member role (``adapters.declarations``), so
onboarding a member is one StackSet instance; what the member says about itself wins for its own
resources (``Settings.for_account``). The value (JSON)::

    {"version": 1,
     "training_buckets": ["member-training-data"],
     "reencrypt_kms_key": "arn:aws:kms:us-east-1:111122223333:key/…",   # or ""
     "training_principals": ["arn:aws:iam::111122223333:role/ml/Trainer"]}

Every value is data from another account: a key or a principal of any account but the
declaring one is refused (a key is only ever used for objects of its own account, §11), and so
is anything that is not the shape above (``InvalidDeclaration`` names the field).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from clguard.boundary.parsing import optional_field, optional_text, required_field
from clguard.errors import InvalidEvent
from clguard.rules.arns import account_of, parse_key_arn, parse_principal_arn
from clguard.rules.names import is_bucket_name

PARAMETER_NAME: Final = "/custom-labels-guard/member"
MAX_BUCKETS: Final = 100  # S3's default bucket quota per account; a longer list is not a declaration
MAX_PRINCIPALS: Final = 100


class InvalidDeclaration(InvalidEvent):
    """The member's declaration is not the documented shape (the message names the field)."""


@dataclass(frozen=True, slots=True)
class Declaration:
    """A member's settings for its own resources, as its member stack declares them."""

    account: str
    training_buckets: frozenset[str] = frozenset()
    reencrypt_kms_key: str | None = None
    training_principals: tuple[str, ...] = ()


def parse_declaration(raw: str, account: str) -> Declaration:
    """The declaration of ``account`` from the parameter's value; raises InvalidDeclaration.

    Steps: ``_document`` (JSON object, version 1), then one check per field, each naming the field
    and the account in its error: ``_buckets``, ``_key``, ``_principals``.
    """
    where = f"member {account} {PARAMETER_NAME}"
    document = _document(raw, where)
    try:
        buckets = required_field(document, "training_buckets", list, where)
        principals = optional_field(document, "training_principals", list, where) or []
        key = optional_text(document, "reencrypt_kms_key", where)
    except InvalidEvent as error:
        raise InvalidDeclaration(str(error)) from None
    if len(buckets) > MAX_BUCKETS or len(principals) > MAX_PRINCIPALS:
        raise InvalidDeclaration(f"{where} lists more than {MAX_BUCKETS} buckets or {MAX_PRINCIPALS} principals")
    _check_buckets(buckets, where)
    _check_key(key, account, where)
    _check_principals(principals, account, where)
    return Declaration(account, frozenset(buckets), key, tuple(dict.fromkeys(principals)))


def _document(raw: str, where: str) -> dict[str, Any]:
    try:
        document: Any = json.loads(raw)
    except ValueError as error:
        raise InvalidDeclaration(f"{where} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidDeclaration(f"{where} must be a JSON object")
    if document.get("version") != 1:
        raise InvalidDeclaration(f"{where}.version must be 1")
    return document


def _check_buckets(buckets: list[Any], where: str) -> None:
    for bucket in buckets:
        if not isinstance(bucket, str) or not is_bucket_name(bucket):
            raise InvalidDeclaration(f"{where}.training_buckets: {bucket!r} is not a bucket name")


def _check_key(key: str | None, account: str, where: str) -> None:
    """A member's re-encryption key is one of its own (a key is only used for its own account's objects)."""
    if key is not None and (parse_key_arn(key) is None or account_of(key) != account):
        raise InvalidDeclaration(f"{where}.reencrypt_kms_key: {key!r} is not a KMS key ARN of account {account}")


def _check_principals(principals: list[Any], account: str, where: str) -> None:
    """A member declares only principals of its own account."""
    for principal in principals:
        parsed = parse_principal_arn(principal) if isinstance(principal, str) else None
        if parsed is None or parsed.account != account:
            raise InvalidDeclaration(
                f"{where}.training_principals: {principal!r} is not an IAM role or user ARN of account {account}"
            )
