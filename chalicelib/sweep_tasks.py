"""A sweep's plan and fan-out: the task message (one account-region), who may send one (check_task),
which accounts and regions a sweep covers, and sending the tasks to the sweep queue."""
from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .aws import Clients
from .errors import ConfigError, IgnoredEvent, InvalidEvent
from .policy import Policy
from .recheck import message_body
from .settings import Settings
from .triggers import ACCOUNT_RE, REGION_RE

TASK_SCHEMA = "netguard.sweep-task/v1"


@dataclass(frozen=True)
class Task:
    sweep_id: str
    account: str
    region: str
    offset: int = 0  # resources already swept by earlier invocations of this task
    part: int = 0

    @property
    def key(self) -> str:
        return f"{self.account}#{self.region}#{self.part:04d}"

    def encode(self) -> str:
        return json.dumps({"schema": TASK_SCHEMA, "sweep_id": self.sweep_id, "account": self.account,
                           "region": self.region, "offset": self.offset, "part": self.part})

    @classmethod
    def decode(cls, body: Any) -> Task:
        data = message_body(body, TASK_SCHEMA)
        sweep_id, account, region = data.get("sweep_id"), data.get("account"), data.get("region")
        offset, part = data.get("offset", 0), data.get("part", 0)
        if not isinstance(sweep_id, str) or not 0 < len(sweep_id) <= 64:
            raise InvalidEvent("invalid sweep_id")
        if not isinstance(account, str) or not ACCOUNT_RE.match(account):
            raise InvalidEvent("invalid account")
        if not isinstance(region, str) or not REGION_RE.match(region):
            raise InvalidEvent("invalid region")
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in (offset, part)):
            raise InvalidEvent("offset and part must be whole numbers")
        return cls(sweep_id, account, region, offset, part)


def check_task(task: Task, settings: Settings, ledger: Any) -> None:
    """A task is swept only where netguard is configured to act (NETGUARD_ACCOUNTS, NETGUARD_REGIONS)
    and only as part of a sweep netguard planned: its account-region is one of that sweep's recorded
    targets. Anyone who can send to the sweep queue could otherwise point netguard anywhere."""
    if not settings.account_allowed(task.account):
        raise IgnoredEvent(f"sweep task for account {task.account}, which netguard is not configured for")
    if not settings.region_allowed(task.region):
        raise IgnoredEvent(f"sweep task for region {task.region}, which netguard is not configured for")
    targets = ledger.sweep_targets(task.sweep_id)
    if targets is None:
        raise IgnoredEvent(f"sweep task of sweep {task.sweep_id}, which netguard did not start")
    if f"{task.account}/{task.region}" not in targets:
        raise IgnoredEvent(f"sweep task for {task.account}/{task.region}, not a target of sweep {task.sweep_id}")


def new_sweep_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def accounts_to_sweep(settings: Settings, clients: Clients) -> list[str]:
    """Every ACTIVE account of the organization; or our own and the configured ones."""
    if settings.organization:
        org = clients.client("organizations")
        return sorted(a["Id"] for page in org.get_paginator("list_accounts").paginate()
                      for a in page.get("Accounts", []) if a.get("Status") == "ACTIVE")
    return sorted({clients.home_account, *settings.accounts})


def regions_to_sweep(settings: Settings) -> list[str]:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    regions = list(settings.regions) or ([region] if region else [])
    if not regions:
        raise ConfigError("no region to sweep: set NETGUARD_REGIONS")
    return regions


def plan(sweep_id: str, settings: Settings, clients: Clients) -> list[Task]:
    return [Task(sweep_id, account, region) for account in accounts_to_sweep(settings, clients)
            for region in regions_to_sweep(settings)]


@dataclass
class SweepDeps:
    policy: Policy
    settings: Settings
    clients: Clients
    ledger: Any
    notifier: Any
    telemetry: Any = None
    enqueue: Callable[[Task], None] | None = None  # sends a continuation (None: run it in this process)


def send_tasks(clients: Clients, queue_url: str, tasks: list[Task]) -> None:
    """One message per task, ten per call; a task SQS did not take is an error (the sweep would never end)."""
    sqs = clients.client("sqs")
    for start in range(0, len(tasks), 10):
        batch = tasks[start:start + 10]
        answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "MessageBody": t.encode()} for i, t in enumerate(batch)])
        if answer.get("Failed"):
            raise RuntimeError(f"SQS refused {len(answer['Failed'])} sweep task(s): {answer['Failed'][:3]}")
