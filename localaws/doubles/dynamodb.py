"""Amazon DynamoDB as documented, where moto 5.2.5 differs: conditional writes are atomic, items
are bounded.

- ``AtomicConditionalWrites``: DynamoDB Developer Guide, "Condition expressions"
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html)
  and API Reference, "PutItem" (``ReturnValues=ALL_OLD``): the condition is evaluated and the
  write applied as one step per item; the old item returned is the one the put replaced.
- ``ItemSizeLimit``: DynamoDB Developer Guide, "Quotas in Amazon DynamoDB", item size
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html): an item
  is at most 400 KB, whatever expression grows it.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from moto.dynamodb.exceptions import ItemSizeToUpdateTooLarge
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler

from localaws.doubles.base import Double, Wrapper, wrapped

if TYPE_CHECKING:
    pass


_DYNAMODB_WRITE_LOCK = threading.RLock()  # re-entrant: transact_write_items calls put_item


class AtomicConditionalWrites(Double):
    """DynamoDB conditional writes are atomic per item.

    AWS: a PutItem/UpdateItem/DeleteItem ``ConditionExpression`` is evaluated and the write
    applied as one step, so of two concurrent ``attribute_not_exists(id)`` puts exactly one
    succeeds and the other gets ConditionalCheckFailedException; TransactWriteItems is
    all-or-nothing. moto checks, then writes, without a lock. This double serializes moto's
    item writes (put_item, update_item, delete_item, transact_write_items; BatchWriteItem
    goes through put_item/delete_item) behind one lock.

    A read returns an item as of one moment (AWS: a GetItem sees every write that succeeded
    before it, never half of one). moto's GetItem handler serializes the stored item while a
    concurrent UpdateItem may change its maps in place (``RuntimeError: dictionary changed size
    during iteration``, an HTTP 500 AWS never gives), and so does its UpdateItem handler when it
    returns the item (``ReturnValues``) after the lock was left: the double runs the GetItem,
    BatchGetItem and UpdateItem handlers under the same lock (met by group commit's pending
    record, whose waiters read it while others enqueue).

    PutItem with ``ReturnValues=ALL_OLD`` returns the item the put replaced (AWS: "the content
    of the old item is returned"), read in the same atomic step; moto's response handler reads
    it before, and apart from, the write. The double runs that whole handler under the lock.
    """

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        def make(original: Wrapper) -> Wrapper:
            def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
                with _DYNAMODB_WRITE_LOCK:
                    return original(self, *args, **kwargs)

            return locked

        for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
            yield wrapped(DynamoDBBackend, name, make)
        yield wrapped(DynamoHandler, "put_item", make)
        yield wrapped(DynamoHandler, "update_item", make)
        yield wrapped(DynamoHandler, "get_item", make)
        yield wrapped(DynamoHandler, "batch_get_item", make)


class ItemSizeLimit(Double):
    """DynamoDB refuses an item over 400 KB, whatever expression grows it.

    AWS (DynamoDB Developer Guide, "Quotas": "The maximum item size in DynamoDB is 400 KB, which
    includes both attribute name binary length (UTF-8 length) and attribute value lengths"): a
    PutItem or UpdateItem that would make an item larger fails with ValidationException ("Item
    size has exceeded the maximum allowed size" / "Item size to update has exceeded the maximum
    allowed size") and leaves the item as it was. moto checks only when an attribute is set
    whole: an UpdateItem ``ADD`` that grows a set (or a list append) passes at any size. This
    double checks the item after every write and, when it is over the limit, puts the item back
    and raises moto's ValidationException.
    """

    LIMIT_BYTES = 400 * 1024

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        limit = self.LIMIT_BYTES

        def make(original: Wrapper) -> Wrapper:
            def update_item(backend: DynamoDBBackend, table_name: str, key: Any, *args: Any, **kwargs: Any) -> Any:
                with _DYNAMODB_WRITE_LOCK:
                    before = copy.deepcopy(backend.get_item(table_name, key))
                    item = original(backend, table_name, key, *args, **kwargs)
                    if item is not None and item.size() > limit:
                        if before is None:
                            backend.delete_item(table_name, key)
                        else:
                            backend.put_item(table_name, before.to_json()["Attributes"], overwrite=True)
                        raise ItemSizeToUpdateTooLarge()
                    return item

            return update_item

        yield wrapped(DynamoDBBackend, "update_item", make)
