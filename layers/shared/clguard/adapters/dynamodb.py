"""DynamoDB: conditional writes on the state table (lease locks, loop markers)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from botocore.exceptions import ClientError

from clguard.adapters.clients import client, error_code

IAM_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "PutItem": ("dynamodb:PutItem",),
    "DeleteItem": ("dynamodb:DeleteItem",),
    # used by the powertools idempotency utility (DynamoDBPersistenceLayer)
    "GetItem": ("dynamodb:GetItem",),
    "UpdateItem": ("dynamodb:UpdateItem",),
}


def _conditional(call: Callable[..., Any], **params: Any) -> bool:
    """Run a conditional write. False when the condition failed (someone else holds the item)."""
    try:
        call(**params)
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def get(table: str, item_id: str) -> dict[str, Any] | None:
    """The item with this ``id`` (strongly consistent), or None."""
    item: dict[str, Any] | None = (
        client("dynamodb").get_item(TableName=table, Key={"id": {"S": item_id}}, ConsistentRead=True).get("Item")
    )
    return item


def put(table: str, item: Mapping[str, Any]) -> None:
    client("dynamodb").put_item(TableName=table, Item=dict(item))


def put_if(table: str, item: Mapping[str, Any], condition: str, values: Mapping[str, Any]) -> bool:
    """Conditional PutItem."""
    return _conditional(
        client("dynamodb").put_item,
        TableName=table,
        Item=dict(item),
        ConditionExpression=condition,
        ExpressionAttributeValues=dict(values),
    )


def delete_if(
    table: str,
    key: Mapping[str, Any],
    condition: str,
    values: Mapping[str, Any],
    names: Mapping[str, str] | None = None,
) -> bool:
    """Conditional DeleteItem."""
    extra: dict[str, Any] = {"ExpressionAttributeNames": dict(names)} if names else {}
    return _conditional(
        client("dynamodb").delete_item,
        TableName=table,
        Key=dict(key),
        ConditionExpression=condition,
        ExpressionAttributeValues=dict(values),
        **extra,
    )


def update(
    table: str,
    item_id: str,
    expression: str,
    *,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    condition: str | None = None,
) -> dict[str, Any] | None:
    """UpdateItem returning the item after the update; None when ``condition`` failed."""
    params: dict[str, Any] = {
        "TableName": table,
        "Key": {"id": {"S": item_id}},
        "UpdateExpression": expression,
        "ReturnValues": "ALL_NEW",
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
