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
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from clguard.adapters import dynamodb

PREFIX: Final = "securityhub-open#"
TTL_SECONDS: Final = 90 * 24 * 3600
DOC_BYTES: Final = 7_500  # ours are about 2 KB; the documented limits allow more
MAX_PER_RESOURCE: Final = 40  # 40 x 7.5 KB = 300 KB, under the 400 KB item limit
ATTRIBUTE_PREFIX: Final = "f"


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
    """These findings are closed: no longer open on the resource."""
    if not finding_ids:
        return
    names = {f"#a{i}": attribute(f) for i, f in enumerate(sorted(set(finding_ids)))}
    key = item_id(account, region, resource)
    dynamodb.update(table, key, "REMOVE " + ", ".join(names), names=names, condition="attribute_exists(id)")
