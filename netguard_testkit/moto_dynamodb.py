"""DynamoDB transactions as AWS runs them, for moto 5.2 (tests, the demo, the benchmarks' server).

DynamoDB runs a TransactWriteItems atomically and isolated: serializable with respect to other
transactions and single-item writes (the DynamoDB developer guide, "Isolation levels for DynamoDB
transactions"). moto 5.2 instead backs up every table the transaction touches (a deep copy of the
whole table), applies the items one by one, and when one fails restores the copies: a write another
request made in between is undone, and two concurrent claims can both succeed. Each transaction also
costs a copy of the whole table.

`aws_like_dynamodb()` makes moto behave as AWS does, and nothing more:
- one lock serializes moto's DynamoDB writes (put, update, delete, transactions);
- under it, a transaction's conditions and keys are checked before anything is written, so a
  cancelled transaction writes nothing and needs no backup; the backup copy is then skipped.
What netguard sends and what it is answered (TransactionCanceledException with one cancellation
reason per item) are unchanged.
"""
from __future__ import annotations

import contextlib
import copy
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

from moto.dynamodb import models
from moto.dynamodb.exceptions import MultipleTransactionsException, TransactionCanceledException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table


def _holds(backend: DynamoDBBackend, op: dict[str, Any], key: dict[str, Any]) -> bool:
    expression = op.get("ConditionExpression")
    if expression is None:
        return True
    condition = models.get_filter_expression(expression, op.get("ExpressionAttributeNames"),
                                             op.get("ExpressionAttributeValues"))
    return bool(condition.expr(backend.get_item(op["TableName"], key)))


def _check_first(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """Raise what DynamoDB answers before writing anything: two operations on one item, or the
    cancellation with one reason per item when a condition does not hold."""
    seen: set[tuple[str, str]] = set()
    reasons: list[Any] = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        if "Item" in op:
            table = backend.get_table(op["TableName"])
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            key = op["Key"]
        marker = (str(op["TableName"]), str(dict(sorted(key.items()))))
        if marker in seen:
            raise MultipleTransactionsException()
        seen.add(marker)
        reasons.append((None, None, None) if _holds(backend, op, key)
                       else ("ConditionalCheckFailed", "The conditional request failed", None))
    if any(code is not None for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)


@contextlib.contextmanager
def aws_like_dynamodb() -> Iterator[None]:
    """Isolated, all-or-nothing TransactWriteItems in moto (module docstring). Undone on exit."""
    lock = threading.RLock()

    def locked(method: Callable[..., Any]) -> Callable[..., Any]:
        def write(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(self, *args, **kwargs)
        return write

    transact = DynamoDBBackend.transact_write_items

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        with lock:
            _check_first(self, transact_items)
            return transact(self, transact_items)  # every condition holds: moto's own writes

    real_deepcopy = copy.deepcopy
    # moto's module uses copy.deepcopy only for items and for the tables' backup
    no_table_backup = types.SimpleNamespace(
        copy=copy.copy,
        deepcopy=lambda value, *args: value if isinstance(value, Table) else real_deepcopy(value, *args))
    with mock.patch.object(DynamoDBBackend, "put_item", locked(DynamoDBBackend.put_item)), \
         mock.patch.object(DynamoDBBackend, "update_item", locked(DynamoDBBackend.update_item)), \
         mock.patch.object(DynamoDBBackend, "delete_item", locked(DynamoDBBackend.delete_item)), \
         mock.patch.object(DynamoDBBackend, "transact_write_items", transact_write_items), \
         mock.patch.object(models, "copy", no_table_backup):
        yield
