"""The open Security Hub findings the guard imported, kept so that it can close them
(docs/architecture.md §5a): when a condition is later seen gone (the object or key compliant, or
deleted), its open finding is re-imported PASSED/ARCHIVED and set RESOLVED. ``GetFindings`` is
not asked: it is eventually consistent (prowler-cloud/prowler#684 archived live findings by
trusting it).

One item per resource in STATE_TABLE (an object without its version, a key, ...), one attribute
per open finding on it::

    {"id": "securityhub-open#<digest of account, region, resource>",
     "f<digest of the finding Id>": "<the ASFF document as imported, JSON>",
     "expiration": <epoch>}

Bounds, all here: an item expires TTL_SECONDS after its last open import (refreshed when the
condition is seen again); a document is kept only when at most DOC_BYTES; an item keeps at
most MAX_PER_RESOURCE findings (the oldest dropped beyond), so it stays under DynamoDB's 400 KB.

What closing needs of a recorded finding is in its document, read by :func:`condition`: its
finding type and principal (``ProductFields``: a key's findings are per principal, so a
principal found granted closes only its own) and when the condition was last raised
(``CreatedAt``, the finding's ``observed_at``: evidence older than that closes nothing).

The objects of a bucket with open findings are also indexed, per bucket (one item, a string set
of short digests of their names, TTL refreshed on every add)::

    {"id": "securityhub-open-in#<digest of account, region, bucket>", "names": {"<digest>", ...},
     "expiration": <epoch>}

so that the audit, reading a bucket's S3 Inventory, finds the few rows that may close something
without a read per row (:func:`indexed`). The index holds at most MAX_INDEXED names (an add is
refused beyond, counted: such an object is still closed by its events, not by an inventory); a
name leaves it when its object's last open finding closes, or when a lookup finds no record.

The KMS keys with open findings are indexed the same way, one item per account and region (their
ARNs, so that the audit can re-read them: :func:`indexed_keys`)::

    {"id": "securityhub-open-keys#<digest of account, region>", "keys": {"<key ARN>", ...},
     "expiration": <epoch>}

at most MAX_INDEXED_KEYS ARNs (an add is refused beyond, counted: such a key is still closed by
its events and by the next use that meets it, not by the audit's sweep); an ARN leaves it when
the key's last open finding closes, or when the sweep finds no record.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from clguard.adapters import dynamodb
from clguard.rules.arns import parse_key_arn

PREFIX: Final = "securityhub-open#"
TTL_SECONDS: Final = 90 * 24 * 3600
DOC_BYTES: Final = 7_500  # ours are about 2 KB; the documented limits allow more
MAX_PER_RESOURCE: Final = 40  # 40 x 7.5 KB = 300 KB, under the 400 KB item limit
ATTRIBUTE_PREFIX: Final = "f"
INDEX_PREFIX: Final = "securityhub-open-in#"
INDEX_ATTRIBUTE: Final = "names"
MAX_INDEXED: Final = 10_000  # 10,000 x ~20 bytes: far under the 400 KB item limit
NAME_DIGEST: Final = 16  # hex characters of an indexed name's digest (a collision costs one read)
KEYS_INDEX_PREFIX: Final = "securityhub-open-keys#"
KEYS_ATTRIBUTE: Final = "keys"
MAX_INDEXED_KEYS: Final = 1_000  # 1,000 key ARNs of ~80 bytes: far under the 400 KB item limit


@dataclass(frozen=True, slots=True)
class Condition:
    """What closing needs to know of one recorded open finding."""

    finding_type: str
    principal: str | None
    raised_at: datetime | None  # None: unknown (never closed by dated evidence)


def condition(document: Mapping[str, Any]) -> Condition:
    fields = document.get("ProductFields") or {}
    principal = fields.get("CustomLabelsGuard/principal_arn") if isinstance(fields, Mapping) else None
    finding_type = fields.get("CustomLabelsGuard/finding_type", "") if isinstance(fields, Mapping) else ""
    return Condition(str(finding_type), str(principal) if principal else None, parse_time(document.get("CreatedAt")))


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time (``Z`` or an offset, with or without fractions), in UTC; None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def bucket_of(resource: str) -> str | None:
    """The bucket of an object's name (``s3://bucket/key``); None for any other resource."""
    if not resource.startswith("s3://"):
        return None
    bucket, _, key = resource[5:].partition("/")
    return bucket if bucket and key else None


def key_of(resource: str) -> str | None:
    """The key ARN a resource name is (a key's findings are recorded under its ARN); None for any
    other resource."""
    parsed = parse_key_arn(resource)
    return parsed.arn if parsed is not None else None


def keys_index_id(account: str, region: str) -> str:
    digest = hashlib.sha256(json.dumps([account, region]).encode()).hexdigest()
    return f"{KEYS_INDEX_PREFIX}{digest[:40]}"


def index_id(account: str, region: str, bucket: str) -> str:
    digest = hashlib.sha256(json.dumps([account, region, bucket]).encode()).hexdigest()
    return f"{INDEX_PREFIX}{digest[:40]}"


def name_digest(resource: str) -> str:
    return hashlib.sha256(resource.encode()).hexdigest()[:NAME_DIGEST]


def item_id(account: str, region: str, resource: str) -> str:
    """``resource``: the resource as the guard names it without a version (see ``identity``)."""
    digest = hashlib.sha256(json.dumps([account, region, resource]).encode()).hexdigest()
    return f"{PREFIX}{digest[:40]}"


def attribute(finding_id: str) -> str:
    return ATTRIBUTE_PREFIX + hashlib.sha256(finding_id.encode()).hexdigest()[:24]


def _documents(item: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    if not item:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, value in item.items():
        if name.startswith(ATTRIBUTE_PREFIX) and "S" in value:
            try:
                document = json.loads(value["S"])
            except ValueError:
                continue
            if isinstance(document, dict):
                out[name] = document
    return out


def remember(table: str, account: str, region: str, resource: str, document: Mapping[str, Any]) -> bool:
    """Record one open finding (refreshing the item's TTL). False when the document is over
    DOC_BYTES (not kept). Beyond MAX_PER_RESOURCE findings the oldest (by UpdatedAt) are dropped."""
    body = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if len(body.encode()) > DOC_BYTES:
        return False
    expiration = str(int(time.time()) + TTL_SECONDS)
    key = item_id(account, region, resource)
    after = dynamodb.update(
        table,
        key,
        "SET #a = :d, expiration = :e",
        names={"#a": attribute(str(document["Id"]))},
        values={":d": {"S": body}, ":e": {"N": expiration}},
    )
    documents = _documents(after)
    if len(documents) > MAX_PER_RESOURCE:
        oldest = sorted(documents, key=lambda name: str(documents[name].get("UpdatedAt", "")))
        drop = oldest[: len(documents) - MAX_PER_RESOURCE]
        names = {f"#a{i}": name for i, name in enumerate(drop)}
        dynamodb.update(table, key, "REMOVE " + ", ".join(names), names=names, condition="attribute_exists(id)")
    return True


def open_findings(table: str, account: str, region: str, resource: str) -> list[dict[str, Any]]:
    """The open findings recorded on this resource (their ASFF documents)."""
    return list(_documents(dynamodb.get(table, item_id(account, region, resource))).values())


def open_findings_of(
    table: str, resources: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """The open findings recorded on many (account, region, resource) at once (one BatchGetItem per
    100): the resources with none are left out."""
    ids = {item_id(*where): where for where in resources}
    items = dynamodb.get_many(table, list(ids))
    out = {ids[i]: list(_documents(item).values()) for i, item in items.items()}
    return {where: documents for where, documents in out.items() if documents}


def forget(table: str, account: str, region: str, resource: str, finding_ids: Sequence[str]) -> None:
    """These findings are closed: no longer open on the resource (an object with none left
    leaves its bucket's index)."""
    if not finding_ids:
        return
    names = {f"#a{i}": attribute(f) for i, f in enumerate(sorted(set(finding_ids)))}
    key = item_id(account, region, resource)
    after = dynamodb.update(table, key, "REMOVE " + ", ".join(names), names=names, condition="attribute_exists(id)")
    if after is not None and not _documents(after):
        unindex(table, account, region, [resource])


def _index_targets(account: str, region: str, resources: Iterable[str]) -> list[tuple[str, str, list[str], int]]:
    """What ``resources`` add to or remove from the indexes: (item id, attribute, values, bound) for
    the keys' index (first, when any key is named), then one per bucket (its object digests)."""
    by_bucket: dict[str, set[str]] = {}
    keys: set[str] = set()
    for resource in resources:
        bucket = bucket_of(resource)
        if bucket is not None:
            by_bucket.setdefault(bucket, set()).add(name_digest(resource))
        elif (key := key_of(resource)) is not None:
            keys.add(key)
    targets = [(keys_index_id(account, region), KEYS_ATTRIBUTE, sorted(keys), MAX_INDEXED_KEYS)] if keys else []
    targets += [
        (index_id(account, region, bucket), INDEX_ATTRIBUTE, sorted(digests), MAX_INDEXED)
        for bucket, digests in sorted(by_bucket.items())
    ]
    return targets


def index(table: str, account: str, region: str, resources: Iterable[str]) -> int:
    """Index the objects among ``resources`` (per bucket: one UpdateItem per bucket) and the keys
    (one UpdateItem). The number not indexed because their index is full (MAX_INDEXED,
    MAX_INDEXED_KEYS)."""
    refused = 0
    expiration = str(int(time.time()) + TTL_SECONDS)
    for item, name, values, bound in _index_targets(account, region, resources):
        taken = dynamodb.update(
            table,
            item,
            "ADD #n :d SET expiration = :e",
            names={"#n": name},
            values={":d": {"SS": values}, ":e": {"N": expiration}, ":max": {"N": str(bound)}},
            condition="attribute_not_exists(#n) OR size(#n) < :max",
        )
        if taken is None:
            refused += len(values)
    return refused


def unindex(table: str, account: str, region: str, resources: Iterable[str]) -> None:
    for item, name, values, _ in _index_targets(account, region, resources):
        dynamodb.update(
            table,
            item,
            "DELETE #n :d",
            names={"#n": name},
            values={":d": {"SS": values}},
            condition="attribute_exists(id)",  # never creates an index item
        )


def indexed(table: str, account: str, region: str, bucket: str) -> frozenset[str]:
    """The digests (:func:`name_digest`) of the bucket's objects with open findings: one GetItem."""
    item = dynamodb.get(table, index_id(account, region, bucket)) or {}
    return frozenset(item.get(INDEX_ATTRIBUTE, {}).get("SS", []))


def indexed_keys(table: str, account: str, region: str) -> frozenset[str]:
    """The ARNs of the account's keys (in ``region``) with open findings: one GetItem."""
    item = dynamodb.get(table, keys_index_id(account, region)) or {}
    return frozenset(item.get(KEYS_ATTRIBUTE, {}).get("SS", []))
