"""What every action is made of, and the one executor of the AWS writes of remediation and restore alike.

An action's "do" (the remediation, run by the Lambda) and its "undo" (the restore plan, run by `netguard
restore` with the operator's credentials) both come down to Calls: one AWS write each, as data. `execute`
makes them in order and says per call what happened: done; already so (an error the Call names as meaning
that, e.g. a duplicate rule); gone (an error that says what it acts on is not there any more, e.g. a rule
revoked meanwhile); failed, with the AWS error, the calls after it not made. The action reads the outcomes
to say what it changed, so that "already stopped", "already revoked", "already exists" count as success.

The writes of "do" are built with EC2 and SAGEMAKER (`EC2.modify_vpc_attribute(VpcId=..., says=...)`), spelled
as the client method they call: tests/unit/test_iam_policy.py reads the Lambda's code for the operations it calls
and finds them. The writes of "undo" are spelled `Call("ec2", "AuthorizeSecurityGroupIngress", ...)`: the
Lambda never makes them, and its role is not granted them.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError

from ..aws import Clients, error_code, error_message
from ..errors import RemediationError
from ..model import Control, EventContext, Resource, ResourceRef, canonical_json
from .spec import ActionSpec

# What `execute` says of each call.
DONE, ALREADY, GONE, CALL_FAILED, NOT_MADE = "done", "already", "gone", "failed", "not made"


@dataclass(frozen=True)
class Call:
    """One AWS write, as data: printed for a dry-run, made by `execute`, recorded with its result."""

    service: str
    operation: str  # the API's name, e.g. AuthorizeSecurityGroupIngress
    params: Mapping[str, Any]
    says: str  # what it does, for people
    done_codes: tuple[str, ...] = ()  # errors that mean "it is already so"
    gone_codes: tuple[str, ...] = ()  # errors that mean "what it acts on is not there"

    @property
    def method(self) -> str:
        return xform_name(self.operation)


class Writes:
    """The Calls of one service spelled as its client's methods: `EC2.stop_x(Name=n, says=...)` is the Call
    StopX with Name=n. The API's parameters are CamelCase; `says`, `done` (done_codes) and `gone` (gone_codes)
    are the Call's own."""

    def __init__(self, service: str) -> None:
        self.service = service

    def __getattr__(self, method: str) -> Callable[..., Call]:
        operation = "".join(part.capitalize() for part in method.split("_"))
        if method.startswith("_") or xform_name(operation) != method:
            raise AttributeError(method)

        def call(*, says: str, done: tuple[str, ...] = (), gone: tuple[str, ...] = (), **params: Any) -> Call:
            return Call(self.service, operation, params, says, done, gone)

        return call


EC2 = Writes("ec2")
SAGEMAKER = Writes("sagemaker")


def call_view(call: Call, result: str, error: str | None = None) -> dict[str, Any]:
    """A call with its result as plain data (restore's report, its ledger item)."""
    view = {"service": call.service, "operation": call.operation, "params": json.loads(canonical_json(call.params)),
            "says": call.says, "result": result}
    return {**view, "error": error} if error else view


@dataclass(frozen=True)
class Made:
    """What became of one Call."""

    call: Call
    result: str  # DONE, ALREADY, GONE, CALL_FAILED or NOT_MADE
    answer: Mapping[str, Any] = field(default_factory=dict)
    code: str = ""  # AWS's error code (ALREADY, GONE, CALL_FAILED); a timeout: botocore's exception name
    message: str = ""
    exc: BaseException | None = None  # what the call raised

    @property
    def error(self) -> str:
        return f"{self.code}: {self.message}"

    def failure_text(self, label: str | None = None) -> str:
        """The failure as netguard reports it: `Operation: Code: message`."""
        return f"{label or self.call.operation}: {self.error}"

    def view(self) -> dict[str, Any]:
        return call_view(self.call, self.result, self.error if self.result == CALL_FAILED else None)


def _classify(call: Call, code: str) -> str:
    if code in call.done_codes:
        return ALREADY
    return GONE if code in call.gone_codes else CALL_FAILED


def make(call: Call, client: Callable[[str], Any]) -> Made:
    """Make one call with `client(service)` and classify the answer. No answer (a timeout) is a failure too."""
    try:
        answer = getattr(client(call.service), call.method)(**call.params) or {}
    except (ClientError, BotoCoreError) as exc:
        code = error_code(exc)
        return Made(call, _classify(call, code), code=code, message=error_message(exc), exc=exc)
    # CreateFlowLogs, DeleteFlowLogs, DeleteVpcEndpoints answer with errors per item
    errors = [item.get("Error") or {} for item in answer.get("Unsuccessful") or []]
    if not errors:
        return Made(call, DONE, answer)
    results = {_classify(call, e.get("Code", "")) for e in errors}
    result = CALL_FAILED if CALL_FAILED in results else ALREADY if results == {ALREADY} else GONE
    return Made(call, result, answer, errors[0].get("Code", ""), errors[0].get("Message", ""))


def execute(calls: tuple[Call, ...] | list[Call], client: Callable[[str], Any]) -> list[Made]:
    """Make the calls in order; stop at the first failure (later calls may depend on it): those are NOT_MADE."""
    made: list[Made] = []
    for call in calls:
        failed = bool(made) and made[-1].result in (CALL_FAILED, NOT_MADE)
        made.append(Made(call, NOT_MADE) if failed else make(call, client))
    return made


def first_failure(made: list[Made]) -> Made | None:
    return next((m for m in made if m.result == CALL_FAILED), None)


def failure(made: Made, label: str | None = None) -> Exception:
    """What a remediation raises for a failed call: RemediationError `Operation: Code: message` (`label`
    instead of the operation). A call that got no answer (a timeout) raises botocore's own error, which the
    pipeline records as the action's failure with its code and message."""
    if isinstance(made.exc, BotoCoreError):
        return made.exc
    error = RemediationError(made.failure_text(label))
    error.__cause__ = made.exc
    return error


def check(made: Made, label: str | None = None) -> Made:
    """The call's outcome, unless it failed: then the remediation fails with it (`failure`)."""
    if made.result == CALL_FAILED:
        raise failure(made, label)
    return made


# --- remediation: a request, its result, an action -----------------------------------------------

@dataclass(frozen=True)
class ActionRequest:
    """One execution: the resource as read, what to act on, and why (the controls and the event)."""

    clients: Clients
    resource: Resource
    targets: tuple[str, ...]
    controls: tuple[Control, ...]
    context: EventContext

    @property
    def control_ids(self) -> tuple[str, ...]:
        return tuple(sorted(c.id for c in self.controls))

    def param(self, name: str, default: Any = None) -> Any:
        for control in self.controls:
            if control.params.get(name) not in (None, ""):
                return control.params[name]
        return default

    def client(self, service: str) -> Any:
        ref = self.resource.ref
        return self.clients.client(service, ref.region, ref.account)


@dataclass(frozen=True)
class ActionResult:
    result: str  # SUCCEEDED or ALREADY_DONE; failures raise RemediationError
    detail: str
    # What the action created that the resource now uses (a VPC's new flow log): indexed like what
    # collecting it finds, so that deleting it too brings the resource back (ledger `uses#`).
    created: tuple[ResourceRef, ...] = ()


# --- restore: what a plan reads, and what it produces --------------------------------------------

class Recorded(Protocol):
    """What a restore plan reads of an action's ledger record (restore.records.ActionRecord)."""

    @property
    def ref(self) -> ResourceRef: ...
    @property
    def before(self) -> Mapping[str, Any]: ...
    @property
    def detail(self) -> str: ...


@dataclass(frozen=True)
class RestoreRequest:
    record: Recorded
    current: Resource  # the resource as read now
    clients: Clients
    start: bool = False  # start a quarantined notebook again

    def client(self, service: str) -> Any:
        ref = self.record.ref
        return self.clients.client(service, ref.region, ref.account)


@dataclass(frozen=True)
class Plan:
    calls: tuple[Call, ...] = ()
    unchanged: tuple[str, ...] = ()  # what already matches the before-state
    notes: tuple[str, ...] = ()
    refused: str | None = None  # why it cannot be undone
    nothing: str | None = None  # why there is nothing to undo


def attribute_plan(req: RestoreRequest, fields: tuple[str, ...], call: Callable[[str, Any], Call],
                   read: Callable[[Resource, str], Any] = lambda r, f: r.state.get(f)) -> Plan:
    """Set each recorded attribute back, in order, when it differs now (None: not recorded, left)."""
    calls, unchanged = [], []
    for name in fields:
        wanted = req.record.before.get(name)
        if wanted is None:
            continue
        now = read(req.current, name)
        if now == wanted:
            unchanged.append(f"{name} is {wanted}")
        else:
            calls.append(call(name, wanted))
    return Plan(tuple(calls), tuple(unchanged))


# --- an action bound to its code ----------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Action(ActionSpec):
    """A declared action (actions/catalog.py: what it acts on, when, with which permissions) bound to its code:
    `run` makes the remediation's writes, `undo` plans the restore (None: nothing to plan)."""

    run: Callable[[ActionRequest], ActionResult]
    undo: Callable[[RestoreRequest], Plan] | None = None


def bind(spec: ActionSpec, run: Callable[[ActionRequest], ActionResult],
         undo: Callable[[RestoreRequest], Plan] | None = None) -> Action:
    """The declared `spec` with its remediation and its restore plan."""
    return Action(**{f.name: getattr(spec, f.name) for f in fields(spec)}, run=run, undo=undo)
