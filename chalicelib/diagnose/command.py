"""`netguard diagnose RESOURCE`: why a notebook, job, endpoint or Studio domain cannot reach S3, ECR, STS,
CloudWatch Logs or the SageMaker API, read-only, as ordered causes with evidence and the fix.

Exit status: 0 no blocking cause found (causes that only slow traffic across zones may be listed);
1 blocking causes found; 2 usage error (unknown kind, invalid or unknown name, an ARN of another
account); 3 could not read what the diagnosis needs (the message says what).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

EXIT_CLEAN, EXIT_CAUSES, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3


def register(sub: Any) -> None:
    """Add `netguard diagnose` to the CLI's subparsers."""
    parser = sub.add_parser("diagnose", help="why a SageMaker resource cannot reach S3, ECR, STS, logs or the "
                                             "SageMaker API (read-only)")
    parser.add_argument("resource", metavar="RESOURCE",
                        help="a SageMaker ARN, or KIND/NAME: notebook/NAME, training-job/NAME, processing-job/NAME, "
                             "transform-job/NAME, tuning-job/NAME, endpoint/NAME, domain/d-xxxxxxxxxxxx")
    parser.add_argument("--region", help="AWS region (default: the ARN's, else the profile's)")
    parser.add_argument("--profile", help="AWS profile (default: the standard credential chain)")
    parser.add_argument("--to", action="append", metavar="SERVICE",
                        help="only this destination (repeatable), e.g. --to sts --to s3 (default: the policy's "
                             "essential endpoints this kind of resource calls)")
    parser.add_argument("--policy-dir", help="policy directory (default: the bundled policies/)")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO) -> int:
    import boto3  # noqa: PLC0415
    from botocore.exceptions import BotoCoreError  # noqa: PLC0415

    from ..aws import Clients  # noqa: PLC0415

    try:
        session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
    except BotoCoreError as exc:  # an unknown profile
        print(f"netguard diagnose: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_with(Clients(session), session.region_name, args, out)


def run_with(clients: Any, default_region: str | None, args: argparse.Namespace, out: TextIO) -> int:
    """Diagnose with these clients (tests pass their own): parse, read, follow the paths, print."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from ..errors import NetguardError  # noqa: PLC0415
    from ..model import ResourceRef  # noqa: PLC0415
    from ..policy import load_policy  # noqa: PLC0415
    from .gather import ReadError, UsageError, destinations, parse_resource, read  # noqa: PLC0415
    from .reach import diagnose  # noqa: PLC0415

    try:
        rtype, name, arn_region, arn_account = parse_resource(args.resource)
        params = load_policy(args.policy_dir).control("VPC.4").params
        needs = destinations(rtype, [*params.get("gateway_services", []), *params.get("interface_services", [])],
                             args.to)
        region = args.region or arn_region or default_region
        if not region:
            raise UsageError("no region: pass --region or an ARN")
        if arn_region and region != arn_region:
            raise UsageError(f"the ARN is in {arn_region}, --region says {region}")
    except UsageError as exc:
        print(f"netguard diagnose: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (NetguardError, KeyError) as exc:
        print(f"netguard diagnose: the policy has no usable VPC.4 control: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        account = clients.home_account
        if arn_account and arn_account != account:
            raise UsageError(f"the ARN is in account {arn_account}; these credentials are for {account}")
        workload, network = read(clients, ResourceRef(rtype, name, account, region), needs)
    except UsageError as exc:
        print(f"netguard diagnose: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ReadError, ClientError, BotoCoreError, NetguardError) as exc:
        print(f"netguard diagnose: could not read {args.resource}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    diagnosis = diagnose(workload, network)
    report = diagnosis.as_dict()
    if args.format == "json":
        json.dump(report, out, indent=2)
        out.write("\n")
    else:
        render(report, out)
    return EXIT_CAUSES if diagnosis.blocked else EXIT_CLEAN


def render(report: dict[str, Any], out: TextIO) -> None:
    """The table: the workload, the causes (most blocking first) with evidence and fix, what is reachable."""
    w = report["workload"]
    out.write(f"{w['resource']} ({w['status'] or 'status unknown'})\n")
    if w["sagemaker_network"]:
        out.write(f"  network: {w['sagemaker_network']}\n")
    else:
        out.write(f"  {w['vpc']}, subnets {', '.join(w['subnets']) or '-'}, "
                  f"security groups {', '.join(w['security_groups']) or '-'}\n")
    out.write(f"  destinations: {', '.join(w['destinations'])}\n")
    causes = report["causes"]
    out.write(f"\n{len(causes)} cause{'s' if len(causes) != 1 else ''}"
              + (" (most blocking first)\n" if causes else ": nothing found that blocks these destinations\n"))
    for cause in causes:
        out.write(f"\n{cause['rank']}. [{cause['impact']}] {cause['title']}\n")
        out.write(f"   affects: {', '.join(cause['destinations'])}"
                  + (f" from {', '.join(cause['subnets'])}" if cause["subnets"] else "") + "\n")
        for key, value in cause["evidence"].items():
            shown = "; ".join(str(v) for v in value) if isinstance(value, list) else str(value)
            out.write(f"   {key}: {shown}\n")
        out.write(f"   fix: {cause['fix']}\n")
    if report["reachable"]:
        out.write("\nreachable\n")
        width = max(len(d) for d in report["reachable"])
        for destination, how in report["reachable"].items():
            out.write(f"  {destination:<{width}}  {how}\n")
    for note in report["notes"]:
        out.write(f"\nnote: {note}")
    out.write("\n")
