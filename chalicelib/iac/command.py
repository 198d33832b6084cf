"""`netguard check FILE...`: the baseline on CloudFormation templates and Terraform plans, before deploy.

Exit status as scan's: 0 no NON_COMPLIANT finding; 1 NON_COMPLIANT findings; 2 usage error or a file that
is not a readable template or plan (the message names the file and what is wrong); 3 could not evaluate
(invalid policy or configuration).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

EXIT_CLEAN, EXIT_VIOLATIONS, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3
FORMATS = ("table", "json", "sarif", "junit")


def add_parser(sub: Any) -> None:
    check = sub.add_parser("check", help="evaluate CloudFormation templates and Terraform plans before deploy")
    check.add_argument("files", nargs="+", metavar="FILE",
                       help="CloudFormation template (YAML or JSON, cdk synth output, SAM) or Terraform plan "
                            "(terraform show -json PLAN)")
    check.add_argument("--format", choices=FORMATS, default="table")
    check.add_argument("--output", "-o", help="write the report to this file (default: stdout)")
    check.add_argument("--parameter", "-p", action="append", default=[], metavar="NAME=VALUE",
                       help="a CloudFormation parameter's value (else its Default; without one it is unknown)")
    check.add_argument("--region", help="the region the stack is for (AWS::Region, Fn::GetAZs; default AWS_REGION or "
                                        "AWS_DEFAULT_REGION); without one, what depends on it is unknown")
    check.add_argument("--policy-dir", help="policy directory (default: NETGUARD_POLICY_DIR, else the bundled one)")
    check.add_argument("--fail-on-unknown", action="store_true",
                       help="exit 1 also when a control could not be evaluated because the file leaves a value it "
                            "needs to deploy time (a parameter, an import): what CI cannot see, it does not pass")
    check.add_argument("--help-uri", help="SARIF: base URL of the controls' documentation (helpUri = URL#<id>)")
    check.set_defaults(run=run)


def _parameters(values: list[str]) -> dict[str, str]:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--parameter {item!r}: expected NAME=VALUE")
        out[name] = value
    return out


def read_file(path: str, parameters: dict[str, str], region: str | None) -> Any:
    """One file as declared resources (model.Parsed); FileError says what is wrong with it."""
    from .cfn import is_template, load_document, parse_template  # noqa: PLC0415
    from .model import MAX_FILE_BYTES, FileError  # noqa: PLC0415
    from .terraform import is_plan, parse_plan  # noqa: PLC0415

    file = Path(path)
    try:
        if not file.is_file():
            raise FileError(f"{path}: no such file")
        if file.stat().st_size > MAX_FILE_BYTES:
            raise FileError(f"{path}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileError(f"{path}: not UTF-8 text") from exc
    except OSError as exc:
        raise FileError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    data, lines = load_document(path, text)
    if is_plan(data):
        if parameters:
            raise FileError(f"{path}: --parameter applies to CloudFormation templates, not to a Terraform plan")
        return parse_plan(path, data)
    if is_template(data):
        return parse_template(path, data, lines, parameters, region)
    raise FileError(f"{path}: neither a CloudFormation template (no Resources mapping) nor a Terraform plan "
                    "(terraform show -json: format_version, resource_changes)")


def run(args: argparse.Namespace, out: TextIO) -> int:
    from ..cli import output_problem, write_output  # noqa: PLC0415 - scan's --output, shared
    from ..errors import NetguardError  # noqa: PLC0415
    from ..policy import load_policy  # noqa: PLC0415
    from ..settings import Settings  # noqa: PLC0415
    from . import report as reports  # noqa: PLC0415
    from .model import FileError  # noqa: PLC0415
    from .states import evaluate_file  # noqa: PLC0415

    problem = output_problem(args.output)
    if problem:
        print(f"netguard: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        parameters = _parameters(args.parameter)
    except ValueError as exc:
        print(f"netguard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = Settings.from_env()
        policy = load_policy(args.policy_dir or settings.policy_dir)
    except NetguardError as exc:
        print(f"netguard: could not load the policy: {exc}", file=sys.stderr)
        return EXIT_ERROR
    # the region the stack goes to: --region, else the one the AWS CLI would deploy to
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
    found, notes = [], []
    for path in args.files:
        try:
            parsed = read_file(path, parameters, region or None)
        except FileError as exc:
            print(f"netguard: {exc}", file=sys.stderr)
            return EXIT_USAGE
        findings = evaluate_file(parsed, list(policy.controls), settings.control_modes, region=region)
        found += [(finding, decl, path) for finding, decl in findings]
        if not findings:
            notes.append(f"{path}: declares no resource the baseline covers")
        notes += parsed.notes
    report = reports.build(reports.finding_rows(found, region), list(args.files), notes, region)
    # NOT_APPLICABLE because the file leaves a value to deploy time (--fail-on-unknown fails on them)
    unknown = sum(1 for r in report["findings"] if r["status"] == "NOT_APPLICABLE"
                  and str((r["evidence"] or {}).get("reason", "")).startswith(reports.UNKNOWN))
    report["summary"]["unknown"] = unknown
    text: str
    if args.format == "json":
        text = json.dumps(report, indent=2) + "\n"
    elif args.format == "sarif":
        text = json.dumps(reports.sarif(report, list(policy.controls), args.help_uri), indent=2) + "\n"
    elif args.format == "junit":
        text = reports.junit(report)
    else:
        from io import StringIO  # noqa: PLC0415

        buffer = StringIO()
        reports.render_table(report, buffer)
        text = buffer.getvalue()
    if not write_output(text, args.output, out):
        return EXIT_USAGE
    if report["summary"]["non_compliant"] or (args.fail_on_unknown and unknown):
        return EXIT_VIOLATIONS
    return EXIT_CLEAN
