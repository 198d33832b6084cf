"""Restore's records: an action as the ledger holds it, read from the JSON-lines file of `netguard scan
--enforce` or from the DynamoDB table (each record's signature checked with the ledger key), and the restore
written back as its own item (sk = restore#<time>); the action's own record is never changed."""
from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import ClientError

from ..aws import Clients, error_code
from ..errors import ConfigError, NetguardError
from ..ledger import ref_from_key
from ..ledger.dynamodb import deserialize
from ..model import ResourceRef, canonical_json
from ..signing import MAC_ALGORITHM, action_message, key_region

log = logging.getLogger("netguard.restore")


class UnknownAction(NetguardError):
    """No action with this id in the ledger."""


@dataclass(frozen=True)
class ActionRecord:
    """One action as the ledger holds it (pk = action#<id>, sk = action)."""

    action_id: str
    action: str
    ref: ResourceRef
    controls: tuple[str, ...]
    before: Mapping[str, Any]
    result: str  # succeeded, already-done, failed, or started (never finished)
    detail: str
    at: str | None = None
    signature: str = "not-checked"  # SIGNED, UNSIGNED, BAD_SIGNATURE, NO_KEY; not-checked: a local file ledger


# What a DynamoDB ledger's action record is, checked against the ledger key (signing.py)
SIGNED, UNSIGNED, BAD_SIGNATURE, NO_KEY = "signed", "unsigned", "bad-signature", "no-key"
SIGNATURE_PROBLEMS = {
    UNSIGNED: "the record carries no signature of netguard's ledger key: netguard did not write it whole "
              "(or wrote it without NETGUARD_LEDGER_KEY_ID)",
    BAD_SIGNATURE: "the record's signature is not the ledger key's: it was written or changed by someone else",
    NO_KEY: "its signature cannot be checked without the ledger key: give --ledger-key (the stack's LedgerKeyArn) "
            "or NETGUARD_LEDGER_KEY_ID",
}


def timestamp() -> str:
    """Now, as the ledger writes times."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def action_pk(action_id: str) -> str:
    return f"action#{action_id}"


def record_from_item(action_id: str, item: Mapping[str, Any], outcome: Mapping[str, Any] | None = None) -> ActionRecord:
    """An ActionRecord from a ledger item (plain values). `outcome`: a decision record of the action,
    for ledgers whose action item still says `started` (the JSONL file of `scan --enforce` appends the
    action before it runs; its result is in the decision records that follow)."""
    ref = ref_from_key(str(item.get("resource", "")))
    if ref is None or not item.get("action"):
        raise ConfigError(f"ledger record of {action_id} is malformed: no action or resource")
    before = item.get("before") or {}
    if isinstance(before, str):
        try:
            before = json.loads(before)
        except ValueError as exc:
            raise ConfigError(f"ledger record of {action_id} is malformed: its before-state is not JSON") from exc
    result, detail = str(item.get("result") or "started"), str(item.get("detail") or "")
    if result == "started" and outcome is not None and outcome.get("result"):
        result, detail = str(outcome["result"]), str(outcome.get("detail") or "")
    return ActionRecord(action_id, str(item["action"]), ref, tuple(item.get("controls") or ()), before, result,
                        detail, item.get("at"))


class RestoreLedger(Protocol):
    where: str

    def action(self, action_id: str) -> ActionRecord | None: ...
    def record_restore(self, action_id: str, item: Mapping[str, Any]) -> None: ...


class FileLedger:
    """The JSON-lines ledger of `netguard scan --enforce --ledger-file`: the last line for a (pk, sk) wins;
    a restore is appended as a new line."""

    def __init__(self, path: str) -> None:
        if not os.path.isfile(path):
            raise ConfigError(f"no ledger file {path} (give --ledger-file, or set NETGUARD_LEDGER_TABLE)")
        self.path = path
        self.where = f"ledger file {path}"

    def records(self) -> Iterator[dict[str, Any]]:
        """Each line that is a JSON object, in the order written; a line that is not JSON is logged and skipped."""
        with open(self.path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    log.warning("%s:%d is not JSON: skipped", self.path, number)
                    continue
                if isinstance(record, dict):
                    yield record

    def action(self, action_id: str) -> ActionRecord | None:
        pk = action_pk(action_id)
        item: dict[str, Any] | None = None
        outcome: dict[str, Any] | None = None
        for record in self.records():
            if record.get("pk") == pk and record.get("sk") == "action":
                item = record
            elif record.get("action_id") == action_id and str(record.get("sk", "")).startswith("decision#"):
                outcome = record
        return None if item is None else record_from_item(action_id, item, outcome)

    def record_restore(self, action_id: str, item: Mapping[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"pk": action_pk(action_id), "sk": f"restore#{item['at']}", **item},
                                    default=str) + "\n")


class TableLedger:
    """The DynamoDB ledger (NETGUARD_LEDGER_TABLE): a restore is a new item pk = action#<id>,
    sk = restore#<time>, kept as long as the action's record. Anyone who can write the table could write
    an action: each record's signature is checked with the ledger key (`kms`: a KMS client, `key_id`)."""

    def __init__(self, table_name: str, ddb: Any, retention_days: int = 400, key_id: str | None = None,
                 kms: Any = None) -> None:
        self.table_name, self.ddb, self.retention = table_name, ddb, dt.timedelta(days=retention_days)
        self.key_id, self.kms = key_id, kms
        self.where = f"ledger table {table_name}"

    def action(self, action_id: str) -> ActionRecord | None:
        item = self.ddb.get_item(TableName=self.table_name, ConsistentRead=True,
                                 Key={"pk": {"S": action_pk(action_id)}, "sk": {"S": "action"}}).get("Item")
        if not item:
            return None
        plain = deserialize(item)
        record = record_from_item(action_id, plain)
        return dataclasses.replace(record, signature=self._signature(action_id, plain))

    def signature(self, action_id: str, item: Mapping[str, Any]) -> str:
        """SIGNED, UNSIGNED, BAD_SIGNATURE or NO_KEY for an action item (plain values) of this table."""
        return self._signature(action_id, item)

    def _signature(self, action_id: str, item: Mapping[str, Any]) -> str:
        mac = item.get("mac")
        if not isinstance(mac, str) or not mac:
            return UNSIGNED
        if self.key_id is None or self.kms is None:
            return NO_KEY
        try:
            raw = base64.b64decode(mac, validate=True)
        except ValueError:
            return BAD_SIGNATURE
        try:
            valid = self.kms.verify_mac(KeyId=self.key_id, MacAlgorithm=MAC_ALGORITHM, Mac=raw,
                                        Message=action_message(action_id, item)).get("MacValid")
        except ClientError as exc:
            if error_code(exc) != "KMSInvalidMacException":
                raise
            valid = False
        return SIGNED if valid else BAD_SIGNATURE

    def record_restore(self, action_id: str, item: Mapping[str, Any]) -> None:
        expires = int((dt.datetime.now(dt.UTC) + self.retention).timestamp())
        values: dict[str, Any] = {"pk": {"S": action_pk(action_id)}, "sk": {"S": f"restore#{item['at']}"},
                                  "expires_at": {"N": str(expires)}}
        for key, value in item.items():
            if value is not None:
                values[key] = {"S": value if isinstance(value, str) else canonical_json(value)}
        self.ddb.put_item(TableName=self.table_name, Item=values, ConditionExpression="attribute_not_exists(sk)")


def open_ledger(ledger_file: str | None, table_name: str | None, clients: Clients, region: str | None,
                retention_days: int = 400, key_id: str | None = None) -> RestoreLedger:
    """--ledger-file if given, else the table (NETGUARD_LEDGER_TABLE, its records checked with the ledger
    key `key_id`), else netguard-ledger.jsonl."""
    if ledger_file:
        return FileLedger(ledger_file)
    if table_name:
        kms = clients.client("kms", key_region(key_id) or region) if key_id else None
        return TableLedger(table_name, clients.client("dynamodb", region), retention_days, key_id, kms)
    return FileLedger("netguard-ledger.jsonl")
