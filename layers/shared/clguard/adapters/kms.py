"""KMS: describe keys, read tags, read and write key policies."""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError

from clguard.adapters.clients import aws, client, error_code, raise_if_transient
from clguard.errors import LeaseExpired

IAM_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "DescribeKey": ("kms:DescribeKey",),
    "ListResourceTags": ("kms:ListResourceTags",),
    "GetKeyPolicy": ("kms:GetKeyPolicy",),
    "PutKeyPolicy": ("kms:PutKeyPolicy",),
    "ListAliases": ("kms:ListAliases",),  # the names people know keys by, in human renderings
}

USABLE_STATES: Final = frozenset({"Enabled"})


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What DescribeKey says about a key (None fields when the key could not be described)."""

    arn: str
    key_id: str
    account: str
    state: str
    manager: str  # CUSTOMER | AWS

    @property
    def usable(self) -> bool:
        return self.state in USABLE_STATES

    @property
    def customer_managed(self) -> bool:
        return self.manager == "CUSTOMER"


@dataclass(frozen=True, slots=True)
class KeyLookup:
    """DescribeKey's answer: the key, or why there is none."""

    reference: str
    key: KeyInfo | None
    problem: str = ""
    not_found: bool = False  # KMS says no such key (deleted, or never was): not a refusal to say


@aws
def describe(reference: str) -> KeyLookup:
    """Resolve a key id, key ARN, alias name or alias ARN to the key (docs/architecture.md §6)."""
    try:
        meta = client("kms").describe_key(KeyId=reference)["KeyMetadata"]
    except ClientError as error:
        raise_if_transient(error)
        code = error_code(error)
        if code in ("NotFoundException", "InvalidArnException", "ValidationException"):
            return KeyLookup(
                reference, None, f"the key {reference} does not exist ({code})", not_found=code == "NotFoundException"
            )
        return KeyLookup(reference, None, f"the key {reference} could not be described ({code})")
    return KeyLookup(
        reference,
        KeyInfo(
            arn=meta["Arn"],
            key_id=meta["KeyId"],
            account=meta.get("AWSAccountId") or meta["Arn"].split(":")[4],
            state=meta.get("KeyState") or ("Enabled" if meta.get("Enabled") else "Disabled"),
            manager=meta.get("KeyManager", "CUSTOMER"),
        ),
    )


@aws
def tags(key_arn: str) -> dict[str, str]:
    out: dict[str, str] = {}
    kwargs: dict[str, Any] = {"KeyId": key_arn}
    while True:
        page = client("kms").list_resource_tags(**kwargs)
        out.update({t["TagKey"]: t["TagValue"] for t in page.get("Tags", [])})
        if not page.get("Truncated") or not page.get("NextMarker"):
            return out
        kwargs["Marker"] = page["NextMarker"]


@aws
def aliases(key_arn: str) -> list[str]:
    """The key's alias names (``alias/...``), sorted; every page."""
    out: list[str] = []
    kwargs: dict[str, Any] = {"KeyId": key_arn}
    while True:
        page = client("kms").list_aliases(**kwargs)
        out.extend(str(a["AliasName"]) for a in page.get("Aliases", []) if a.get("AliasName"))
        if not page.get("Truncated") or not page.get("NextMarker"):
            return sorted(out)
        kwargs["Marker"] = page["NextMarker"]


@aws
def get_policy(key_arn: str) -> str:
    return str(client("kms").get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"])


# The time (epoch seconds) after which this thread's PutKeyPolicy must not be sent.
_send_by: ContextVar[float | None] = ContextVar("clguard_put_policy_send_by", default=None)


def _refuse_late_send(**_: Any) -> None:
    """``before-send``: the last moment before the request goes on the wire (after signing,
    credentials, endpoint resolution — steps no timeout bounds). Past the lease, do not send."""
    deadline = _send_by.get()
    if deadline is not None and time.time() > deadline:
        raise LeaseExpired(f"the key's lease ended {time.time() - deadline:.3f}s before PutKeyPolicy was sent")


@aws
def put_policy(key_arn: str, policy: str, *, send_by: float | None = None) -> None:
    """One bounded attempt (see clients.WRITE_CONFIG): it runs inside the key's lease, and is
    not sent at all after ``send_by`` (raises LeaseExpired, a RetryableError)."""
    kms = client("kms", bounded=True)
    kms.meta.events.register_first(
        "before-send.kms.PutKeyPolicy", _refuse_late_send, unique_id="clguard-put-policy-send-by"
    )
    token = _send_by.set(send_by)
    try:
        kms.put_key_policy(KeyId=key_arn, PolicyName="default", Policy=policy, BypassPolicyLockoutSafetyCheck=False)
    finally:
        _send_by.reset(token)
