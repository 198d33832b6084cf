"""The ledger in memory (tests, read-only scans, local --enforce without a table), optionally appending
every record as one JSON line to a file: the file backend of the CLI, which restore.py reads.

What the file holds: each record as first written (claims, actions, decisions, undelivered alerts,
sweeps). Settling a claim or finishing an action changes the record in memory only; the dependency
index and the budget counters live in memory only.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from . import rules
from .base import Key, LedgerBase
from .rules import Clause, holds, sweep_pk


def _key(item: Mapping[str, Any]) -> Key:
    return str(item["pk"]), str(item["sk"])


class MemoryLedger(LedgerBase):
    """A ledger in memory (tests, read-only scans, local --enforce without a table), optionally
    appending every record as one JSON line to `path`."""

    def __init__(self, path: str | None = None, dedup_hours: int = 24, finished_days: int = 90) -> None:
        self.path = path
        self.dedup = dt.timedelta(hours=dedup_hours)
        self.finished_hold = dt.timedelta(days=finished_days)
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.RLock()

    # --- storage primitives (base.LedgerBase) ---

    def _put(self, item: Mapping[str, Any], new: bool = False) -> None:
        with self._lock:
            record = dict(item)
            self.items[_key(record)] = record
            if self.path:
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record, default=str) + "\n")

    def _put_if(self, item: Mapping[str, Any], condition: Clause, values: Mapping[str, Any]) -> bool:
        with self._lock:
            if not holds(condition, self.items.get(_key(item)), values):
                return False
            self._put(item)
            return True

    def _put_index(self, item: Mapping[str, Any]) -> None:
        with self._lock:
            self.items[_key(item)] = dict(item)

    def _update(self, key: Key, set_: Mapping[str, Any] | None = None, add: Mapping[str, int] | None = None,
                condition: Clause | None = None, values: Mapping[str, Any] | None = None) -> bool:
        with self._lock:
            item = self.items.get(key)
            if condition is not None and not holds(condition, item, values or {}):
                return False
            if item is None:
                item = self.items[key] = {"pk": key[0], "sk": key[1]}
            item.update(set_ or {})
            for name, amount in (add or {}).items():
                item[name] = item.get(name, 0) + amount
            return True

    def _get(self, key: Key, attributes: tuple[str, ...] | None = None) -> dict[str, Any] | None:
        with self._lock:
            return self.items.get(key)

    def _query(self, pk: str, prefix: str = "", consistent: bool = False,
               attributes: tuple[str, ...] | None = None) -> Iterator[dict[str, Any]]:
        with self._lock:
            found = sorted((key, item) for key, item in self.items.items()
                           if key[0] == pk and key[1].startswith(prefix))
        return iter([item for _, item in found])

    def _delete(self, key: Key) -> None:
        with self._lock:
            self.items.pop(key, None)

    def _encode(self, value: Any) -> Any:
        return value

    def _decode(self, value: Any) -> Any:
        return dict(value)

    def _atomic(self) -> contextlib.AbstractContextManager[Any]:
        return self._lock

    def _claim_taken(self, item: dict[str, Any]) -> None:
        """Nothing to keep: the claim is already whole in `items` (only DynamoDB settles it later)."""

    def _action_started(self, action_id: str, item: dict[str, Any]) -> None:
        """Nothing to keep: the record is already whole in `items` (only DynamoDB finishes it later)."""

    # --- what a dict does at once ---

    def record_sweep_stats(self, sweep_id: str, key: str, stats: Mapping[str, Any],
                           final: bool) -> tuple[int, int] | None:
        with self._lock:
            item = self._sweep_stats_item(sweep_id, key, stats, rules.utcnow())
            meta = self.items.get((sweep_pk(sweep_id), "meta"))
            if _key(item) in self.items or meta is None:
                return None  # already recorded (a redelivered message), or an unknown sweep
            self._put(item)
            if final:
                meta["done"] += 1
            return meta["done"], meta["expected"]

    def records(self, prefix: str) -> list[dict[str, Any]]:
        return [v for (pk, sk), v in self.items.items() if sk.startswith(prefix) or pk.startswith(prefix)]
