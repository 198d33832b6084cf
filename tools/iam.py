"""The Lambda role's policy of each stage (.chalice/policy-<stage>.json), generated, never hand-kept.

    .venv/bin/python tools/stack.py write    # regenerates these files with the deploy/*.yaml sections

A statement comes from what needs it:
- the reads every run shares (chalicelib/lookups.py READ_STATEMENTS);
- each resource type's reads, listing and tags (chalicelib/resources: `reads`, `extra_reads`, `listing`,
  `taggable`);
- each remediation's writes (chalicelib/actions: ActionSpec.statements);
- netguard's own platform (ledger, alerts, queues, secrets, logs, tracing, Config answers, member roles):
  tools/iam-platform.json, with {stage} for the stage's resource names.
The member account role (deploy/member-account.yaml) takes the member part of the prod policy.
tests/unit/test_iam_policy.py checks the result against the AWS calls the code makes.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from botocore import xform_name
from botocore.session import get_session

from chalicelib.actions.catalog import ACTION_SPECS
from chalicelib.lookups import READ_STATEMENTS
from chalicelib.resources import REGISTRY
from chalicelib.resources.base import ResourceType

ROOT = Path(__file__).resolve().parent.parent
PLATFORM = ROOT / "tools" / "iam-platform.json"


def policy_path(stage: str) -> Path:
    return ROOT / ".chalice" / f"policy-{stage}.json"


def _one_or_many(values: Iterable[str]) -> str | list[str]:
    values = sorted(set(values))
    return values[0] if len(values) == 1 else values


def _statement(sid: str, actions: Iterable[str], resources: Iterable[str],
               condition: Mapping[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": _one_or_many(actions),
                           "Resource": _one_or_many(resources)}
    if condition:
        out["Condition"] = dict(condition)
    return out


class _PaginatorName:
    """Stands in for a client to learn which operation a Listing paginates (its `pages` names it literally)."""

    def get_paginator(self, name: str) -> str:
        return name


def listing_action(spec: ResourceType) -> str:
    assert spec.listing is not None
    method = spec.listing.pages(_PaginatorName())
    model = get_session().get_service_model(spec.service)
    operation = next(op for op in model.operation_names if xform_name(op) == method)
    return f"{spec.aws_namespace}:{operation}"


def _plural(spec: ResourceType) -> str:
    name = spec.short_name.replace("HyperParameterTuningJob", "TuningJob")
    return name[:-1] + "ies" if name.endswith("y") else name + "s"


def read_statements() -> list[dict[str, Any]]:
    """What reading every registered type needs: shared lookups, each type's describe calls on its own ARNs,
    its other reads, the listings of scans and sweeps, and the tags of SageMaker resources."""
    out = [dict(st) for st in READ_STATEMENTS]
    for spec in REGISTRY:
        if spec.reads:
            out.append(_statement(f"Read{_plural(spec)}", spec.reads, [spec.arn_pattern]))
        out += [dict(st) for st in spec.extra_reads]
    tagged = [s for s in REGISTRY if s.service == "sagemaker" and s.taggable and s.evaluated]
    if tagged:
        out.append(_statement("ListSageMakerTags", ["sagemaker:ListTags"], [s.arn_pattern for s in tagged]))
    by_service: dict[str, list[str]] = {}
    for spec in REGISTRY:
        if spec.listing is not None and listing_action(spec) not in spec.reads:  # else granted on its ARNs
            by_service.setdefault(spec.service, []).append(listing_action(spec))
    for service, actions in sorted(by_service.items()):
        name = {"sagemaker": "SageMaker", "efs": "Efs", "ec2": "Ec2"}.get(service, service.capitalize())
        out.append(_statement(f"List{name}ResourcesForSweeps", actions, ["*"]))
    return out


def action_statements() -> list[dict[str, Any]]:
    """What every remediation writes (and reads only to write), as its ActionSpec declares; a statement two
    actions share (same Sid) is granted once and must be the same."""
    out: dict[str, dict[str, Any]] = {}
    for spec in ACTION_SPECS:
        for st in spec.statements:
            if st["Sid"] in out and out[st["Sid"]] != dict(st):
                raise ValueError(f"action {spec.name}: statement {st['Sid']} differs from another action's")
            out[st["Sid"]] = dict(st)
    return list(out.values())


def platform_statements(stage: str) -> list[dict[str, Any]]:
    return json.loads(PLATFORM.read_text(encoding="utf-8").replace("{stage}", stage))


def lambda_policy(stage: str) -> dict[str, Any]:
    statements = read_statements() + action_statements() + platform_statements(stage)
    sids = [st["Sid"] for st in statements]
    duplicated = sorted({s for s in sids if sids.count(s) > 1})
    if duplicated:
        raise ValueError(f"statement ids used twice: {duplicated}")
    return {"Version": "2012-10-17", "Statement": statements}


def render(stage: str) -> str:
    return json.dumps(lambda_policy(stage), indent=2) + "\n"
