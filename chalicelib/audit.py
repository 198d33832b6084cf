"""`netguard report`: the auditor's question answered from the record. Every violation, decision and action
the ledger holds for a period, by control and account (CLI only: the Lambdas never import it).

What it reads: decision records (pk = res#<resource>, sk = decision#<time>#<event>#<control>: one per
decision netguard made, with the finding's status and evidence, what it decided and what came of it), action
records (pk = action#<id>, sk = action: the remediation, its before-state and result, signed with the ledger
key) and restore records (sk = restore#<time>). From the JSON-lines file of `scan --enforce` (the last line
of a key wins), or from the table NETGUARD_LEDGER_TABLE.

The table has no index on time (partition key pk, sort key sk), so the period is read with a Scan, page by
page, filtered by sort key and time: DynamoDB reads (and bills) the whole table to answer it. An action
record a decision names from before the period is fetched by key (BatchGetItem).

Trust: whoever can write the table can write a record. Action records carry the MAC of netguard's ledger
key and each is checked (as restore does); a decision that names an action is as good as that action's
record and its agreement with it (same resource, its control, same result). Decision records themselves are
not signed: the report says so, and marks every record whose action is missing, unsigned, wrongly signed,
inconsistent or unchecked (no key) as untrusted, never silently counted as done.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

from .ledger.dynamodb import deserialize
from .restore.records import BAD_SIGNATURE, NO_KEY, SIGNED, UNSIGNED, FileLedger, TableLedger

log = logging.getLogger("netguard.audit")

SCHEMA = "netguard.audit-report/v1"
NOT_CHECKED = "not-checked"  # a local file ledger: nothing is signed there
MISSING = "missing"  # the decision names an action the ledger does not hold
INCONSISTENT = "inconsistent"  # the action record is of another resource or control, or says another result
NO_ACTION = "no-action"  # the decision names no action: nothing to check it against
UNTRUSTED = frozenset({MISSING, INCONSISTENT, UNSIGNED, BAD_SIGNATURE, NO_KEY})
DECISIONS_UNSIGNED = ("decision records are not signed: a record naming no action is as trustworthy as whoever "
                      "can write the ledger (see README, Threat model)")
CSV_FIELDS = ("time", "account", "region", "control", "severity", "resource_type", "resource_id", "status",
              "decision", "reason", "action", "action_id", "result", "detail", "trust", "trigger", "event_id",
              "principal", "evidence")


def parse_time(text: str, end_of_day: bool = False) -> dt.datetime:
    """YYYY-MM-DD (UTC midnight; with `end_of_day`, the next midnight: an --until date is included) or an ISO
    8601 time (UTC unless it names a zone). ValueError with what is wrong."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = dt.datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=dt.UTC)
            return day + dt.timedelta(days=1) if end_of_day else day
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _iso(moment: dt.datetime) -> str:
    """As the ledger writes times (sort keys compare as text)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json(value: Any) -> Any:
    """Nested data as the table stores it (canonical JSON text) or as the file does (the value)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class Window:
    """The period [since, until) and the sort-key bounds that select it."""

    def __init__(self, since: dt.datetime, until: dt.datetime) -> None:
        if until <= since:
            raise ValueError(f"--until ({_iso(until)}) is not after --since ({_iso(since)})")
        self.since, self.until = since, until
        self.low, self.high = _iso(since), _iso(until)

    def holds(self, stamp: Any) -> bool:
        return isinstance(stamp, str) and self.low <= stamp < self.high


# --- reading -------------------------------------------------------------------------------------------

def _file_items(ledger: FileLedger) -> Iterator[dict[str, Any]]:
    """Each (pk, sk) of a JSON-lines ledger as last written; lines that are not JSON objects are skipped."""
    items = {(r["pk"], r["sk"]): r for r in ledger.records()
             if isinstance(r.get("pk"), str) and isinstance(r.get("sk"), str)}
    return iter(items.values())


def _table_items(ledger: TableLedger, window: Window) -> Iterator[dict[str, Any]]:
    """The period's decisions, actions and restores: a paginated Scan (the table has no time index)."""
    params = {
        "TableName": ledger.table_name,
        "FilterExpression": "(begins_with(sk, :d) AND sk BETWEEN :dlo AND :dhi) OR (sk = :a AND #at BETWEEN "
                            ":lo AND :hi) OR (begins_with(sk, :r) AND sk BETWEEN :rlo AND :rhi)",
        "ExpressionAttributeNames": {"#at": "at"},
        "ExpressionAttributeValues": {":d": {"S": "decision#"}, ":dlo": {"S": f"decision#{window.low}"},
                                      ":dhi": {"S": f"decision#{window.high}"}, ":a": {"S": "action"},
                                      ":lo": {"S": window.low}, ":hi": {"S": window.high},
                                      ":r": {"S": "restore#"}, ":rlo": {"S": f"restore#{window.low}"},
                                      ":rhi": {"S": f"restore#{window.high}"}},
    }
    for page in ledger.ddb.get_paginator("scan").paginate(**params):
        for item in page.get("Items", []):
            yield deserialize(item)


def _table_actions(ledger: TableLedger, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Action records by id, 100 keys per BatchGetItem (what DynamoDB leaves unprocessed is asked again)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 100):
        keys = [{"pk": {"S": f"action#{i}"}, "sk": {"S": "action"}} for i in ids[start:start + 100]]
        request: dict[str, Any] = {ledger.table_name: {"Keys": keys, "ConsistentRead": True}}
        while request:
            answer = ledger.ddb.batch_get_item(RequestItems=request)
            for item in answer.get("Responses", {}).get(ledger.table_name, []):
                plain = deserialize(item)
                found[str(plain["pk"]).removeprefix("action#")] = plain
            request = answer.get("UnprocessedKeys") or {}
    return found


# --- building ------------------------------------------------------------------------------------------

def _resource(record: Mapping[str, Any]) -> dict[str, str]:
    resource = _json(record.get("resource"))
    resource = resource if isinstance(resource, dict) else {}
    return {k: str(resource.get(k) or "") for k in ("type", "id", "arn", "account", "region")}


def _controls(item: Mapping[str, Any]) -> list[str]:
    found = item.get("controls")
    return [str(c) for c in found] if isinstance(found, list) else []


def _trust(record: Mapping[str, Any], resource: Mapping[str, str], action: Mapping[str, Any] | None,
           signature: str) -> str:
    if not record.get("action_id"):
        return NO_ACTION
    if action is None:
        return MISSING
    key = f"{resource['account']}#{resource['region']}#{resource['type']}#{resource['id']}"
    result = action.get("result")
    if action.get("resource") != key or str(record.get("control")) not in _controls(action) or (
            result not in (None, "started") and result != record.get("result")):
        return INCONSISTENT
    return signature


def build_report(items: Iterator[dict[str, Any]], window: Window, ledger: FileLedger | TableLedger,
                 controls: Mapping[str, Any], account: str | None = None, control: str | None = None,
                 fetch: Any = None) -> dict[str, Any]:
    """The report over the ledger's `items` (decisions, actions, restores: anything else is passed over).
    `fetch(ids)` gives action records by id that the period does not hold (a table's; None for a file)."""
    decisions, actions, restores = [], {}, []
    for item in items:
        sk, pk = str(item.get("sk", "")), str(item.get("pk", ""))
        if sk.startswith("decision#") and window.holds(sk.split("#")[1] if sk.count("#") >= 3 else None):
            decisions.append(item)
        elif sk == "action" and pk.startswith("action#"):
            actions[pk.removeprefix("action#")] = item
        elif sk.startswith("restore#") and window.holds(sk.removeprefix("restore#")):
            restores.append(item)
    named = sorted({str(d["action_id"]) for d in decisions if d.get("action_id")} - set(actions))
    if named and fetch is not None:
        actions.update(fetch(named))
    signatures = {i: ledger.signature(i, a) if isinstance(ledger, TableLedger) else NOT_CHECKED
                  for i, a in actions.items()}
    rows = []
    for record in decisions:
        resource = _resource(record)
        control_id = str(record.get("control") or "")
        if (account and resource["account"] != account) or (control and control_id != control):
            continue
        action_id = str(record.get("action_id") or "")
        found = _json(record.get("evidence"))
        rows.append({
            "time": str(record["sk"]).split("#")[1], "account": resource["account"], "region": resource["region"],
            "control": control_id, "severity": getattr(controls.get(control_id), "severity", ""),
            "resource_type": resource["type"], "resource_id": resource["id"], "arn": resource["arn"],
            "status": str(record.get("status") or ""), "decision": str(record.get("decision") or ""),
            "reason": str(record.get("reason") or ""), "action": record.get("action"), "action_id": action_id or None,
            "result": str(record.get("result") or ""), "detail": str(record.get("detail") or ""),
            "trust": _trust(record, resource, actions.get(action_id), signatures.get(action_id, MISSING)),
            "trigger": record.get("trigger"), "event_id": record.get("event_id"), "principal": record.get("principal"),
            "evidence": found if isinstance(found, (dict, list)) else {},
        })
    rows.sort(key=lambda r: (r["time"], r["account"], r["control"], r["resource_id"]))
    action_rows = []
    for action_id, item in sorted(actions.items()):
        key = str(item.get("resource") or "").split("#")
        acct, region, rtype, rid = key if len(key) == 4 else ("", "", "", "")
        in_scope = window.holds(item.get("at")) and (not account or acct == account) and (
            not control or control in _controls(item))
        if in_scope:
            action_rows.append({"action_id": action_id, "action": item.get("action"), "account": acct, "region": region,
                                "resource_type": rtype, "resource_id": rid, "controls": _controls(item),
                                "at": item.get("at"), "result": item.get("result"), "detail": item.get("detail"),
                                "signature": signatures[action_id],
                                "restored": [str(r["sk"]).removeprefix("restore#") for r in restores
                                             if r.get("pk") == f"action#{action_id}"]})
    return {"schema": SCHEMA, "ledger": ledger.where,
            "period": {"since": window.low, "until": window.high},
            "filters": {"account": account, "control": control},
            "records": rows, "actions": action_rows, "summary": summarize(rows, action_rows)}


def summarize(rows: list[dict[str, Any]], actions: list[dict[str, Any]]) -> dict[str, Any]:
    """By control and by account: decisions (by kind and result), violations (distinct resources with a
    NON_COMPLIANT decision), and what could not be trusted."""
    def group(key: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for row in rows:
            entry = out.setdefault(row[key], {"decisions": 0, "violations": set(), "by_decision": Counter(),
                                              "by_result": Counter(), "untrusted": 0})
            entry["decisions"] += 1
            entry["by_decision"][row["decision"]] += 1
            entry["by_result"][row["result"]] += 1
            entry["untrusted"] += row["trust"] in UNTRUSTED
            if row["status"] == "NON_COMPLIANT":
                entry["violations"].add((row["account"], row["region"], row["resource_type"], row["resource_id"],
                                         row["control"]))
        return {k: {**v, "violations": len(v["violations"]), "by_decision": dict(sorted(v["by_decision"].items())),
                    "by_result": dict(sorted(v["by_result"].items()))} for k, v in sorted(out.items())}

    violations = {(r["account"], r["region"], r["resource_type"], r["resource_id"], r["control"])
                  for r in rows if r["status"] == "NON_COMPLIANT"}
    untrusted = [r for r in rows if r["trust"] in UNTRUSTED]
    return {"decisions": len(rows), "violations": len(violations), "actions": len(actions),
            "by_control": group("control"), "by_account": group("account"),
            "trust": dict(sorted(Counter(r["trust"] for r in rows).items())),
            "action_signatures": dict(sorted(Counter(a["signature"] for a in actions).items())),
            "untrusted": len(untrusted) + sum(a["signature"] in UNTRUSTED for a in actions),
            "note": DECISIONS_UNSIGNED}


# --- output --------------------------------------------------------------------------------------------

def render_table(report: Mapping[str, Any], out: TextIO) -> None:
    s, period = report["summary"], report["period"]
    out.write(f"{report['ledger']}, {period['since']} to {period['until']}\n\n")
    lines: list[tuple[str, ...]] = [("CONTROL", "ACCOUNT", "VIOLATIONS", "DECISIONS", "ACTED", "UNTRUSTED")]
    per: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in report["records"]:
        per.setdefault((row["control"], row["account"]), []).append(row)
    for (control, account), rows in sorted(per.items()):
        violations = {(r["region"], r["resource_type"], r["resource_id"]) for r in rows
                      if r["status"] == "NON_COMPLIANT"}
        acted = sum(r["result"] in ("succeeded", "already-done") for r in rows)
        lines.append((control, account, str(len(violations)), str(len(rows)), str(acted),
                      str(sum(r["trust"] in UNTRUSTED for r in rows))))
    _columns(lines, out)
    out.write("\n")
    detail: list[tuple[str, ...]] = [
        ("TIME", "CONTROL", "ACCOUNT", "REGION", "RESOURCE", "DECISION", "RESULT", "TRUST")]
    detail += [(r["time"], r["control"], r["account"], r["region"], r["resource_id"], r["decision"], r["result"],
                r["trust"]) for r in report["records"]]
    _columns(detail, out)
    out.write(f"\n{s['decisions']} decisions on {s['violations']} violations, {s['actions']} actions; "
              f"{s['untrusted']} untrusted\nnote: {s['note']}\n")
    for action in report["actions"]:
        if action["signature"] in UNTRUSTED:
            out.write(f"untrusted action {action['action_id']} ({action['resource_id']}): {action['signature']}\n")


def _columns(lines: list[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        out.write("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() + "\n")


def render_csv(report: Mapping[str, Any], out: TextIO) -> None:
    """One row per decision record (the evidence as JSON text), RFC 4180 quoting."""
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in report["records"]:
        writer.writerow({**row, "evidence": json.dumps(row["evidence"], sort_keys=True, default=str),
                         "action": row["action"] or "", "action_id": row["action_id"] or ""})


def run_report(ledger: FileLedger | TableLedger, window: Window, controls: Mapping[str, Any],
               account: str | None = None, control: str | None = None) -> dict[str, Any]:
    """Read the ledger (file or table) for `window` and build the report."""
    if isinstance(ledger, TableLedger):
        return build_report(_table_items(ledger, window), window, ledger, controls, account, control,
                            fetch=lambda ids: _table_actions(ledger, ids))
    return build_report(_file_items(ledger), window, ledger, controls, account, control)


EXIT_UNTRUSTED = 4  # the report was written, with records it could not trust


def command(args: Any, out: TextIO) -> int:
    """`netguard report` (cli.py's parser): 0 every record trusted, 2 usage, 3 ledger unreadable, 4 untrusted."""
    import sys  # noqa: PLC0415

    import boto3  # noqa: PLC0415
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from .aws import Clients  # noqa: PLC0415
    from .errors import ConfigError, NetguardError  # noqa: PLC0415
    from .policy import load_policy  # noqa: PLC0415
    from .restore.records import open_ledger  # noqa: PLC0415
    from .settings import Settings  # noqa: PLC0415

    try:
        since = parse_time(args.since)
        until = parse_time(args.until, end_of_day=True) if args.until else dt.datetime.now(dt.UTC)
        window = Window(since, until)
    except ValueError as exc:
        print(f"netguard: report: {exc}", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
        session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
        ledger = open_ledger(args.ledger_file, settings.ledger_table, Clients(session), args.region,
                             settings.ledger_retention_days, args.ledger_key or settings.ledger_key_id)
        controls = {c.id: c for c in load_policy(settings.policy_dir).controls}
        assert isinstance(ledger, (FileLedger, TableLedger))
        report = run_report(ledger, window, controls, args.account, args.control)
    except ConfigError as exc:
        print(f"netguard: {exc}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError, NetguardError, OSError) as exc:
        print(f"netguard: could not read the ledger: {exc}", file=sys.stderr)
        return 3
    if args.format == "json":
        json.dump(report, out, indent=2, default=str)
        out.write("\n")
    elif args.format == "csv":
        render_csv(report, out)
    else:
        render_table(report, out)
    if report["summary"]["untrusted"]:
        print(f"netguard: {report['summary']['untrusted']} record(s) could not be trusted (see trust and "
              f"signature in the report)", file=sys.stderr)
        return EXIT_UNTRUSTED
    return 0


__all__ = ["BAD_SIGNATURE", "INCONSISTENT", "MISSING", "NOT_CHECKED", "NO_ACTION", "NO_KEY", "SCHEMA", "SIGNED",
           "UNSIGNED", "UNTRUSTED", "Window", "build_report", "command", "parse_time", "render_csv", "render_table",
           "run_report"]
