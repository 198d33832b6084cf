"""Restore: undo one recorded remediation from the ledger's before-state (`netguard restore <action-id>`).

`records`: an action as the ledger holds it (file or DynamoDB table, signatures checked) and the restore
written back; `flow`: plan, execute, record and alert a restore. Each action's restore plan lives beside the
action, in `chalicelib.actions`; the calls are made by the executor the remediations use.
"""
from __future__ import annotations

from ..actions.base import Call, Plan, RestoreRequest
from ..actions.security_group import RULE_IDENTITY, rule_text
from .flow import (
    ACTS_ON,
    ALREADY_RESTORED,
    FAILED,
    NOTHING_TO_RESTORE,
    REFUSED,
    RESTORED,
    WOULD_RESTORE,
    ReadError,
    RestoreReport,
    alert_sender,
    plan_restore,
    read_now,
    restore_action,
    restore_notice,
)
from .records import (
    BAD_SIGNATURE,
    NO_KEY,
    SIGNATURE_PROBLEMS,
    SIGNED,
    UNSIGNED,
    ActionRecord,
    FileLedger,
    RestoreLedger,
    TableLedger,
    UnknownAction,
    action_pk,
    open_ledger,
    record_from_item,
)

__all__ = [
    "ACTS_ON", "ALREADY_RESTORED", "BAD_SIGNATURE", "FAILED", "NOTHING_TO_RESTORE", "NO_KEY", "REFUSED", "RESTORED",
    "RULE_IDENTITY", "SIGNATURE_PROBLEMS", "SIGNED", "UNSIGNED", "WOULD_RESTORE", "ActionRecord", "Call",
    "FileLedger", "Plan", "ReadError", "RestoreLedger", "RestoreReport", "RestoreRequest", "TableLedger",
    "UnknownAction", "action_pk", "alert_sender", "open_ledger", "plan_restore", "read_now", "record_from_item",
    "restore_action", "restore_notice", "rule_text",
]
