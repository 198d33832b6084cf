"""The `netguard` command: `scan` an account with the same collect/evaluate/decide code as the Lambdas,
`restore` what one remediation changed, and `check` templates and plans before deploy
(chalicelib/iac). Other installed packages add subcommands through the entry
point group `netguard.commands` (the development install's `demo`: netguard_demo.run), so this module
never names them and the deployed code, which has no such entry point, never imports them.

Only the report goes to stdout; logs (and progress, on a terminal) go to stderr.
Exit status: 0 ran, no violation; 1 ran, violations found; 2 usage error; 3 could not run, or could
not read some resources (the report says which).
`diagnose`: 0 no blocking cause, 1 blocking causes, 2 usage error or unknown resource, 3 could not read
(chalicelib/diagnose/command.py).
`restore`: 0 restored, already restored or nothing to restore (also a dry-run's plan); 2 usage error,
unknown action id, no ledger, or credentials of another account; 3 an AWS call failed (reading, writing
or recording the restore); 4 refused: the action cannot be undone (the report says why).
`report` (audit.py): every violation, decision and action the ledger recorded in a period. 0 the report, every
record trusted; 2 usage error (a date, no ledger); 3 the ledger could not be read; 4 the report, with records
it could not trust (marked: unsigned, wrong signature, inconsistent, missing).
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TextIO

EXIT_CLEAN, EXIT_VIOLATIONS, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3
EXIT_REFUSED = 4  # restore: the action cannot be undone
COMMANDS_GROUP = "netguard.commands"  # entry points: register(subparsers) adds a subcommand that sets `run`

log = logging.getLogger("netguard.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netguard", description="SageMaker networking compliance for AWS accounts")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    scan = sub.add_parser("scan", help="evaluate every notebook and security group in a region")
    scan.add_argument("--region", required=True, help="AWS region to scan, e.g. eu-west-1")
    scan.add_argument("--profile", help="AWS profile (default: the standard credential chain)")
    scan.add_argument("--format", choices=("table", "json", "html"), default="table",
                      help="html: one self-contained page (summaries, violations with evidence and fix)")
    scan.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE (default: stdout)")
    scan.add_argument("--enforce", action="store_true",
                      help="remediate per each control's mode (default: read-only, nothing written or sent)")
    scan.add_argument("--ledger-file", default="netguard-ledger.jsonl",
                      help="with --enforce and no NETGUARD_LEDGER_TABLE: where actions are recorded")
    scan.add_argument("--policy-dir", help="policy directory (default: the bundled policies/)")
    scan.add_argument("--job-lookback-days", type=positive_int, metavar="DAYS",
                      help="also evaluate jobs that finished, if created within DAYS (default: "
                           "NETGUARD_JOB_LOOKBACK_DAYS, else 90)")
    restore = sub.add_parser("restore", help="re-apply what one remediation changed, from the ledger's before-state")
    restore.add_argument("action_id", metavar="ACTION_ID",
                         help="the action id (scan --format json: decision.action_id)")
    restore.add_argument("--ledger-file", help="the JSON-lines ledger of scan --enforce "
                                               "(default: NETGUARD_LEDGER_TABLE if set, else netguard-ledger.jsonl)")
    restore.add_argument("--region", help="region of the ledger table (the action's own region is in its record)")
    restore.add_argument("--profile", help="AWS profile (default: the standard credential chain)")
    restore.add_argument("--member-role", help="role name to assume in the action's account, if not ours")
    restore.add_argument("--external-id", help="external id for --member-role")
    restore.add_argument("--dry-run", action="store_true", help="print the calls it would make; write nothing")
    restore.add_argument("--start", action="store_true",
                         help="quarantine_notebook: also start the notebook (only from Stopped)")
    restore.add_argument("--yes", action="store_true",
                         help="confirm a restore that re-opens a security group to the internet")
    restore.add_argument("--ledger-key", help="KMS key that signs the DynamoDB ledger's records (the stack's "
                                              "LedgerKeyArn; default NETGUARD_LEDGER_KEY_ID)")
    restore.add_argument("--allow-unsigned", action="store_true",
                         help="restore a DynamoDB ledger record whose signature is missing, wrong or unchecked "
                              "(trusts whoever can write the ledger)")
    restore.add_argument("--format", choices=("table", "json"), default="table")
    from .diagnose.command import register as register_diagnose  # noqa: PLC0415 - imports nothing heavy

    register_diagnose(sub)
    from .iac.command import add_parser as add_check  # noqa: PLC0415 - argparse only; the checker loads on use

    add_check(sub)
    add_report_parser(sub)
    add_installed_commands(sub)
    return parser


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def add_report_parser(sub: Any) -> None:
    report = sub.add_parser("report", help="every violation, decision and action the ledger recorded in a period")
    report.add_argument("--since", required=True, help="start of the period: YYYY-MM-DD (UTC) or an ISO 8601 time")
    report.add_argument("--until", help="end of the period, excluded (a date: to the end of that day; default: now)")
    report.add_argument("--format", choices=("table", "json", "csv"), default="table")
    report.add_argument("--ledger-file", help="the JSON-lines ledger of scan --enforce "
                                              "(default: NETGUARD_LEDGER_TABLE if set, else netguard-ledger.jsonl)")
    report.add_argument("--region", help="region of the ledger table")
    report.add_argument("--profile", help="AWS profile (default: the standard credential chain)")
    report.add_argument("--ledger-key", help="KMS key that signs the DynamoDB ledger's action records (the stack's "
                                             "LedgerKeyArn; default NETGUARD_LEDGER_KEY_ID)")
    report.add_argument("--account", help="only this account's records")
    report.add_argument("--control", help="only this control's records, e.g. JOB.1")


def add_installed_commands(sub: Any) -> None:
    """Subcommands of other installed packages (entry point group netguard.commands): each entry point is a
    function taking the subparsers that adds its parser with a default `run(args, out) -> exit status`.
    One that cannot be loaded is named on stderr and left out; scan and restore still work."""
    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            register = entry.load()
        except ImportError as exc:
            print(f"netguard: subcommand {entry.name} ({entry.value}) not available: {exc}", file=sys.stderr)
            continue
        register(sub)


def configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("netguard")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False


def build_report(rows: list[dict[str, Any]], errors: list[dict[str, str]], enforce: bool,
                 account: str, region: str) -> dict[str, Any]:
    by_status: dict[str, int] = {}
    by_control: dict[str, dict[str, int]] = {}
    for row in rows:
        by_status[row["status"]] = by_status.get(row["status"], 0) + 1
        per = by_control.setdefault(row["control"], {})
        per[row["status"]] = per.get(row["status"], 0) + 1
    acted = [r for r in rows if r["decision"] and r["decision"]["result"] in ("succeeded", "already-done")]
    return {
        "findings": rows,
        "summary": {
            "account": account,
            "region": region,
            "mode": "enforce" if enforce else "read-only",
            "resources": len({(r["resource_type"], r["resource_id"]) for r in rows}),
            "findings": len(rows),
            "by_status": dict(sorted(by_status.items())),
            "by_control": dict(sorted(by_control.items())),
            "non_compliant": by_status.get("NON_COMPLIANT", 0),
            "remediated": len(acted),
            "errors": errors,
        },
    }


def render_table(report: dict[str, Any], out: TextIO) -> None:
    rows = [r for r in report["findings"] if r["status"] == "NON_COMPLIANT"]
    headers = ("CONTROL", "SEVERITY", "RESOURCE", "DECISION", "RESULT")
    table = [headers] + [
        (r["control"], r["severity"], r["resource_id"], (r["decision"] or {}).get("kind", "-"),
         (r["decision"] or {}).get("result", "-"))
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(headers))]
    for line in table:
        out.write("  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() + "\n")
    s = report["summary"]
    out.write(f"\n{s['resources']} resources, {s['findings']} findings: "
              + ", ".join(f"{k} {v}" for k, v in s["by_status"].items())
              + f"; mode {s['mode']}, remediated {s['remediated']}\n")
    for err in s["errors"]:
        out.write(f"could not read {err['resource']}: {err['error']}\n")


class Progress:
    """'scanned 40/300' on stderr, only when stderr is a terminal."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total, self.stream, self.enabled = total, stream, stream.isatty()

    def update(self, done: int) -> None:
        if self.enabled:
            self.stream.write(f"\rscanned {done}/{self.total} resources")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


def scan(args: argparse.Namespace, out: TextIO) -> int:
    import boto3  # noqa: PLC0415
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from .aws import Clients  # noqa: PLC0415
    from .errors import NetguardError  # noqa: PLC0415
    from .scan import run_scan  # noqa: PLC0415
    from .settings import Settings  # noqa: PLC0415

    problem = output_problem(args.output)
    if problem:
        print(f"netguard: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = Settings.from_env()
        if args.job_lookback_days:
            settings = dataclasses.replace(settings, job_lookback_days=args.job_lookback_days)
        session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
        result = run_scan(Clients(session), args.region, enforce=args.enforce, ledger_file=args.ledger_file,
                          policy_dir=args.policy_dir, progress=Progress, settings=settings)
    except (ClientError, BotoCoreError, NetguardError) as exc:
        print(f"netguard: could not scan {args.region}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    report = build_report(result.rows, result.errors, args.enforce, result.account, args.region)
    text = io.StringIO()
    if args.format == "json":
        json.dump(report, text, indent=2, sort_keys=False)
        text.write("\n")
    elif args.format == "html":
        from .policy import load_policy  # noqa: PLC0415
        from .report_html import fixes_by_control, render_html  # noqa: PLC0415 - CLI only

        text.write(render_html(report, fixes_by_control(load_policy(args.policy_dir or os.environ.get(
            "NETGUARD_POLICY_DIR") or None))))
    else:
        render_table(report, text)
    if not write_output(text.getvalue(), args.output, out):
        return EXIT_ERROR
    if result.errors:
        return EXIT_ERROR
    return EXIT_VIOLATIONS if report["summary"]["non_compliant"] else EXIT_CLEAN


def output_problem(path: str | None) -> str | None:
    """Why the report cannot be written to `path` (checked before the scan, not after it), or None."""
    if path is None:
        return None
    target = Path(path)
    if target.is_dir():
        return f"--output {path}: is a directory"
    if not target.parent.is_dir():
        return f"--output {path}: directory {target.parent} does not exist"
    if not os.access(target.parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        return f"--output {path}: not writable"
    return None


def write_output(text: str, path: str | None, out: TextIO) -> bool:
    """The report to `out`, or whole to `path` (a temporary file renamed over it: never half a report)."""
    if path is None:
        out.write(text)
        return True
    temp = Path(f"{path}.tmp-{os.getpid()}")
    try:
        temp.write_text(text, encoding="utf-8")
        temp.replace(path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        print(f"netguard: could not write {path}: {exc.strerror or exc}", file=sys.stderr)
        return False
    print(f"netguard: report written to {path}", file=sys.stderr)
    return True


def render_restore(report: dict[str, Any], out: TextIO) -> None:
    res = report["resource"]
    out.write(f"action    {report['action_id']} {report['action']} ({', '.join(report['controls']) or '-'}): "
              f"{report['action_result']}\n")
    out.write(f"resource  {res['id']} ({res['type']}, {res['account']}, {res['region']})\n")
    out.write(f"result    {report['result'].replace('-', ' ')}: {report['detail']}\n")
    for call in report["calls"]:
        out.write(f"  {call['result']:<10} {call['service']}:{call['operation']}  {call['says']}\n")
        if report["dry_run"]:
            out.write(f"             {json.dumps(call['params'], sort_keys=True)}\n")
    for line in report["unchanged"]:
        out.write(f"  unchanged  {line}\n")
    for line in report["notes"]:
        out.write(f"note: {line}\n")
    if report["record_error"]:
        out.write(f"not recorded in the ledger: {report['record_error']}\n")
    for line in report["alerted"]:
        out.write(f"alert     {line}\n")


def restore(args: argparse.Namespace, out: TextIO) -> int:
    import boto3  # noqa: PLC0415
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from .aws import Clients  # noqa: PLC0415
    from .errors import ConfigError, NetguardError  # noqa: PLC0415
    from .restore import (  # noqa: PLC0415
        FAILED,
        REFUSED,
        UnknownAction,
        alert_sender,
        open_ledger,
        restore_action,
    )
    from .settings import Settings  # noqa: PLC0415

    try:
        settings = Settings.from_env()
        session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
        clients = Clients(session, args.member_role, args.external_id)
        ledger = open_ledger(args.ledger_file, settings.ledger_table, clients, args.region,
                             settings.ledger_retention_days, args.ledger_key or settings.ledger_key_id)
        alert = alert_sender(settings, clients, args.region, use_table=not args.ledger_file and
                             bool(settings.ledger_table))
        report = restore_action(ledger, clients, args.action_id, dry_run=args.dry_run, start=args.start,
                                policy_dir=settings.policy_dir, yes=args.yes, allow_unsigned=args.allow_unsigned,
                                alert=alert)
    except (UnknownAction, ConfigError) as exc:
        print(f"netguard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ClientError, BotoCoreError, NetguardError) as exc:
        print(f"netguard: could not restore {args.action_id}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    view = report.as_dict()
    if args.format == "json":
        json.dump(view, out, indent=2)
        out.write("\n")
    else:
        render_restore(view, out)
    if report.result == FAILED or report.record_error:
        return EXIT_ERROR
    return EXIT_REFUSED if report.result == REFUSED else EXIT_CLEAN


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help exits 0, usage errors exit 2
        return int(exc.code or 0)
    configure_logging(args.verbose)
    if args.command == "scan":
        return scan(args, sys.stdout)
    if args.command == "restore":
        return restore(args, sys.stdout)
    if args.command == "report":
        from .audit import command  # noqa: PLC0415

        return command(args, sys.stdout)
    return int(args.run(args, sys.stdout))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
