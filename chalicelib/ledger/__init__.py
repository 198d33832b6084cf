"""Record: the audit trail of every decision and action, and the claims that make actions happen once.

  rules.py     keys, windows, budgets; conditions as data (evaluated in Python by the file backend,
               rendered as DynamoDB ConditionExpressions) and the claim rule stated in them
  base.py      the ledger's logic over storage primitives (LedgerBase), item shapes, the other write
               conditions, the table's layout
  memory.py    MemoryLedger: in memory, optionally appended to a JSON-lines file (the CLI's backend)
  dynamodb.py  DynamoLedger: the table, with transactions, batches, retries and signed action records
  index.py     BufferedIndex: a sweep's dependency index, written in batches

Every name is imported from here, as before the split. The clock the ledger reads is `rules.utcnow`
(patch that one: the name re-exported here is only a copy).
"""
from __future__ import annotations

import datetime as dt  # noqa: F401  (reached through this package by tests)

from .base import Ledger, LedgerBase, decision_item, log
from .dynamodb import BATCH_WRITE_ITEMS, TRANSACT_ITEMS, DynamoLedger
from .index import BufferedIndex
from .memory import MemoryLedger
from .rules import (
    CLAIM_OPEN,
    CLOCK_SKEW,
    RESOLVED,
    STALE_CLAIM,
    USES_TTL,
    _iso,
    budget_counters,
    budget_window,
    claim_open,
    claim_sk,
    new_action_id,
    ref_from_key,
    resource_pk,
    sweep_pk,
    uses_pk,
    utcnow,
    window_end,
)

__all__ = [
    "BATCH_WRITE_ITEMS", "CLAIM_OPEN", "CLOCK_SKEW", "RESOLVED", "STALE_CLAIM", "TRANSACT_ITEMS", "USES_TTL",
    "BufferedIndex", "DynamoLedger", "Ledger", "LedgerBase", "MemoryLedger", "_iso", "budget_counters",
    "budget_window", "claim_open", "claim_sk", "decision_item", "log", "new_action_id", "ref_from_key",
    "resource_pk", "sweep_pk", "utcnow", "uses_pk", "window_end",
]
