"""DynamoDB: conditional writes on the state table (lease locks, loop markers)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from botocore.exceptions import ClientError

from clguard.adapters.clients import aws, client, error_code
from clguard.errors import Throttled

IAM_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "PutItem": ("dynamodb:PutItem",),
    "DeleteItem": ("dynamodb:DeleteItem",),
    # used by the powertools idempotency utility (DynamoDBPersistenceLayer)
    "GetItem": ("dynamodb:GetItem",),
    "UpdateItem": ("dynamodb:UpdateItem",),
    # the open Security Hub findings of a batch's compliant objects, read at once (SECURITY_HUB=on)
    "BatchGetItem": ("dynamodb:BatchGetItem",),
}

BATCH_GET_MAX: Final = 100  # keys per BatchGetItem (documented limit)
BATCH_GET_ROUNDS: Final = 5  # UnprocessedKeys retried this many times, then raised


def _conditional(
    call: Callable[..., Any],
    condition: str,
    values: Mapping[str, Any],
    names: Mapping[str, str] | None = None,
    **params: Any,
) -> bool:
    """Run a conditional write. False when the condition failed (someone else holds the item)."""
    if names:
        params["ExpressionAttributeNames"] = dict(names)
    try:
        call(ConditionExpression=condition, ExpressionAttributeValues=dict(values), **params)
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return False
        raise
    return True


@aws
def get(table: str, item_id: str) -> dict[str, Any] | None:
    """The item with this ``id`` (strongly consistent), or None."""
    item: dict[str, Any] | None = (
        client("dynamodb").get_item(TableName=table, Key={"id": {"S": item_id}}, ConsistentRead=True).get("Item")
    )
    return item


@aws
def get_part(table: str, item_id: str, projection: str, names: Mapping[str, str]) -> dict[str, Any] | None:
    """Only the attributes (or map entries) ``projection`` names of the item (strongly
    consistent), or None when the item does not exist."""
    item: dict[str, Any] | None = (
        client("dynamodb")
        .get_item(
            TableName=table,
            Key={"id": {"S": item_id}},
            ConsistentRead=True,
            ProjectionExpression=projection,
            ExpressionAttributeNames=dict(names),
        )
        .get("Item")
    )
    return item


@aws
def get_many(table: str, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The items with these ids that exist (strongly consistent), by id: ``BatchGetItem``, at most
    BATCH_GET_MAX keys a call, its ``UnprocessedKeys`` asked again."""
    found: dict[str, dict[str, Any]] = {}
    ids = sorted(set(item_ids))
    for start in range(0, len(ids), BATCH_GET_MAX):
        keys: list[dict[str, Any]] = [{"id": {"S": i}} for i in ids[start : start + BATCH_GET_MAX]]
        for _round in range(BATCH_GET_ROUNDS):
            response = client("dynamodb").batch_get_item(RequestItems={table: {"Keys": keys, "ConsistentRead": True}})
            for item in response.get("Responses", {}).get(table, []):
                found[item["id"]["S"]] = item
            keys = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
            if not keys:
                break
        else:
            raise Throttled(f"BatchGetItem left {len(keys)} keys unprocessed after {BATCH_GET_ROUNDS} rounds")
    return found


@aws
def put(table: str, item: Mapping[str, Any]) -> None:
    client("dynamodb").put_item(TableName=table, Item=dict(item))


@aws
def add_to_set(table: str, item_id: str, attribute: str, values: list[str], expiration: int) -> list[str]:
    """UpdateItem ``ADD`` to a string set (created if missing), and set the item's TTL. Returns
    the set as it is after the write."""
    response = client("dynamodb").update_item(
        TableName=table,
        Key={"id": {"S": item_id}},
        UpdateExpression="ADD #a :v SET expiration = :e",
        ExpressionAttributeNames={"#a": attribute},
        ExpressionAttributeValues={":v": {"SS": values}, ":e": {"N": str(expiration)}},
        ReturnValues="UPDATED_NEW",
    )
    return list(response.get("Attributes", {}).get(attribute, {}).get("SS", []))


@aws
def remove_from_set(table: str, item_id: str, attribute: str, values: list[str]) -> None:
    """UpdateItem ``DELETE`` of values from a string set."""
    client("dynamodb").update_item(
        TableName=table,
        Key={"id": {"S": item_id}},
        UpdateExpression="DELETE #a :v",
        ExpressionAttributeNames={"#a": attribute},
        ExpressionAttributeValues={":v": {"SS": values}},
    )


@aws
def delete(table: str, item_id: str) -> None:
    client("dynamodb").delete_item(TableName=table, Key={"id": {"S": item_id}})


@aws
def put_if(
    table: str,
    item: Mapping[str, Any],
    condition: str,
    values: Mapping[str, Any],
    names: Mapping[str, str] | None = None,
) -> bool:
    """Conditional PutItem."""
    return _conditional(client("dynamodb").put_item, condition, values, names, TableName=table, Item=dict(item))


@aws
def put_if_returning_old(
    table: str, item: Mapping[str, Any], condition: str, values: Mapping[str, Any]
) -> tuple[bool, dict[str, Any] | None]:
    """Conditional PutItem that also says what it replaced: (taken, the old item or None)."""
    try:
        response = client("dynamodb").put_item(
            TableName=table,
            Item=dict(item),
            ConditionExpression=condition,
            ExpressionAttributeValues=dict(values),
            ReturnValues="ALL_OLD",
        )
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return False, None
        raise
    old: dict[str, Any] | None = response.get("Attributes") or None
    return True, old


@aws
def delete_if(
    table: str,
    key: Mapping[str, Any],
    condition: str,
    values: Mapping[str, Any],
    names: Mapping[str, str] | None = None,
) -> bool:
    """Conditional DeleteItem."""
    return _conditional(client("dynamodb").delete_item, condition, values, names, TableName=table, Key=dict(key))


@aws
def update(
    table: str,
    item_id: str,
    expression: str,
    *,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    condition: str | None = None,
    returns: str = "ALL_NEW",
) -> dict[str, Any] | None:
    """UpdateItem returning the item after the update (``returns="UPDATED_NEW"``: only what it
    set); None when ``condition`` failed."""
    params: dict[str, Any] = {
        "TableName": table,
        "Key": {"id": {"S": item_id}},
        "UpdateExpression": expression,
        "ReturnValues": returns,
    }
    if names:
        params["ExpressionAttributeNames"] = dict(names)
    if values:
        params["ExpressionAttributeValues"] = dict(values)
    if condition:
        params["ConditionExpression"] = condition
    try:
        response = client("dynamodb").update_item(**params)
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return None
        raise
    attributes: dict[str, Any] = response.get("Attributes", {})
    return attributes
