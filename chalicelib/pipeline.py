"""Pipeline: runs the stages in order for one trigger, isolating failures per resource and per action.

trigger -> collect -> evaluate -> decide -> act (claimed once, before-state recorded first)
-> record (ledger) + notify (SNS, Slack) + count (metrics).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol


from .aws import AWS_ERRORS, Clients, error_code, error_message, is_retryable
from .collect import Collector
from .decide import decide
from .errors import RemediationError
from .evaluate import evaluate
from .ledger import Ledger, budget_window, new_action_id
from .model import (
    ALREADY_DONE,
    DEFERRED,
    DUPLICATE,
    FAILED,
    LIMITED,
    NO_ACTION,
    NON_COMPLIANT,
    REMEDIATE,
    REPORT_ONLY,
    Decision,
    EventContext,
    Finding,
    Outcome,
    ResourceRef,
    Trigger,
)
from .notify import build_alert
from .policy import Policy
from .remediate import ACTIONS, ActionRequest
from .settings import Settings

log = logging.getLogger("netguard.pipeline")


class Notifier(Protocol):
    def send(self, alert: dict[str, Any]) -> dict[str, str]: ...


class Telemetry(Protocol):
    def count(self, metric: str, control: str, value: int = 1) -> None: ...


class NoTelemetry:
    def count(self, metric: str, control: str, value: int = 1) -> None:
        return None


@dataclass
class RunReport:
    context: EventContext
    findings: list[Finding] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    missing: list[ResourceRef] = field(default_factory=list)
    errors: list[tuple[ResourceRef, str]] = field(default_factory=list)
    deliveries: list[dict[str, str]] = field(default_factory=list)

    def recheck_refs(self, include_duplicates: bool = False) -> list[tuple[ResourceRef, str]]:
        """What to look at again later, and why: deferred decisions (a notebook still Pending, a domain
        with running apps) and resources whose read or remediation failed with a retryable error.
        A deferred decision that was a duplicate is already being rechecked by whoever claimed it,
        unless this run is that recheck (include_duplicates)."""
        found: dict[ResourceRef, str] = {}
        for outcome in self.outcomes:
            ref = outcome.decision.finding.resource.ref
            if outcome.decision.kind == DEFERRED and (outcome.result != DUPLICATE or include_duplicates):
                found.setdefault(ref, outcome.decision.reason)
            elif outcome.result == FAILED and is_retryable(outcome.detail):
                found.setdefault(ref, f"remediation failed: {outcome.detail}")
        for ref, message in self.errors:
            if is_retryable(message):
                found.setdefault(ref, f"read failed: {message}")
        return list(found.items())

    def outcome_for(self, finding: Finding) -> Outcome | None:
        for outcome in self.outcomes:
            if outcome.decision.finding is finding:
                return outcome
        return None


LEDGER_WRITE_ATTEMPTS = 3


def _persist(write: Callable[[], Any]) -> str | None:
    """A ledger write that settles what was done: tried again (beyond botocore's own retries) when AWS
    refuses it, since an unsettled claim holds its violation. None when written, else the last error."""
    error = None
    for _ in range(LEDGER_WRITE_ATTEMPTS):
        try:
            write()
            return None
        except AWS_ERRORS as exc:
            error = f"{error_code(exc)}: {error_message(exc)}"
    return error


class Pipeline:
    def __init__(self, policy: Policy, settings: Settings, clients: Clients, ledger: Ledger | None,
                 notifier: Notifier | None, telemetry: Telemetry | None = None,
                 today: Callable[[], dt.date] | None = None, report_only: bool = False,
                 collector: Collector | None = None) -> None:
        self.policy, self.settings, self.clients = policy, settings, clients
        self.ledger, self.notifier = ledger, notifier
        self.telemetry = telemetry or NoTelemetry()
        self.today = today or (lambda: dt.datetime.now(dt.timezone.utc).date())
        self.report_only = report_only
        self.collector = collector  # shared lookups for a scan; otherwise fresh per run

    def run(self, trigger: Trigger, follow: bool = True) -> RunReport:
        """One trigger through every stage. follow=False: see Collector.collect (sweeps)."""
        context = trigger.context
        report = RunReport(context)
        collector = self.collector or Collector(
            self.clients, {t for c in self.policy.controls for t in c.resource_types}, index=self.ledger)
        collected = collector.collect(trigger.refs, follow=follow)
        report.missing, report.errors = collected.missing, collected.errors
        for ref in collected.missing:
            log.info("resource %s no longer exists: nothing to evaluate", ref.key)
        for ref, message in collected.errors:
            self.telemetry.count("failures", "collect")
            log.error("could not read %s: %s", ref.key, message)
        report.findings = evaluate(self.policy.controls, collected.resources, self.settings.control_modes)
        today = self.today()
        # The event's principal changed the resources it names, not the ones they use (a notebook's VPC).
        anonymous = dataclasses.replace(context, principal=None)
        decisions: list[Decision] = []
        for finding in report.findings:
            self.telemetry.count("evaluations", finding.control.id)
            if finding.status == NON_COMPLIANT:
                self.telemetry.count("violations", finding.control.id)
            named = finding.resource.ref in trigger.refs
            decision = decide(finding, self.policy, self.settings, today, self.report_only,
                              context if named else anonymous)
            if decision is not None:
                decisions.append(decision)
        report.outcomes = self.act(context, decisions)
        for outcome in report.outcomes:
            self._record_and_notify(context, outcome, report)
        return report

    # --- act -----------------------------------------------------------------------------------

    def act(self, context: EventContext, decisions: list[Decision]) -> list[Outcome]:
        """Claim each decision once, then run each remediation once per resource for all its findings."""
        outcomes: list[Outcome] = []
        groups: dict[tuple[str, ResourceRef], list[Decision]] = {}
        for decision in decisions:
            if decision.kind == REPORT_ONLY:
                outcomes.append(Outcome(decision, NO_ACTION, decision.reason))
                continue
            try:
                claimed = self.ledger is None or self.ledger.claim(decision.finding, decision.kind, context)
            except AWS_ERRORS as exc:
                # Without a claim we cannot prove we act once: do nothing, say so.
                self.telemetry.count("failures", decision.finding.control.id)
                outcomes.append(Outcome(decision, FAILED, f"{error_code(exc)}: ledger unavailable, no action taken"))
                continue
            if not claimed:
                log.info("duplicate: %s on %s already handled (%s)", decision.finding.control.id,
                         decision.finding.resource.ref.key, decision.kind)
                outcomes.append(Outcome(decision, DUPLICATE, "already handled by an earlier event"))
                continue
            if decision.kind == REMEDIATE and decision.action:
                groups.setdefault((decision.action, decision.finding.resource.ref), []).append(decision)
            else:
                outcomes.append(Outcome(decision, NO_ACTION, decision.reason))
                self._settle(decision, NO_ACTION)
        for (action_name, ref), group in groups.items():
            refused = self._over_budget(ref)
            if refused:
                for decision in group:
                    self._settle(decision, FAILED)  # not done: a later event or sweep may act
                    outcomes.append(Outcome(decision, LIMITED, refused))
                continue
            outcomes.extend(self._execute(context, action_name, group))
        return outcomes

    def _over_budget(self, ref: ResourceRef) -> str | None:
        """Blast radius: None if one more enforce action is allowed in ref's account in this window,
        else why not. The first refusal of a window sends one "limit reached" notice."""
        if self.ledger is None:
            return None
        limit, minutes = self.settings.max_actions, self.settings.action_window_minutes
        try:
            allowed, first_refusal = self.ledger.take_action_budget(ref.account, limit, minutes)
        except AWS_ERRORS as exc:
            # Without the counter we cannot prove the limit holds: do not act.
            return f"{error_code(exc)}: action budget unavailable, no action taken"
        if allowed:
            return None
        reason = (f"blast-radius limit reached: {limit} enforce actions in account {ref.account} within "
                  f"{minutes} minutes; alerting instead of acting until the window ends")
        if first_refusal:
            log.warning("%s", reason)
            if self.notifier is not None:
                from .notify import build_notice  # noqa: PLC0415

                window = budget_window(dt.datetime.now(dt.timezone.utc), minutes)
                self.notifier.send(build_notice(f"limit-{ref.account}-{window}", "blast-radius limit reached",
                                                reason, account=ref.account))
        return reason

    def _execute(self, context: EventContext, action_name: str, group: list[Decision]) -> list[Outcome]:
        action = ACTIONS[action_name]
        resource = group[0].finding.resource
        targets = tuple(sorted({t for d in group for t in d.finding.targets}))
        controls = tuple({d.finding.control.id: d.finding.control for d in group}.values())
        control_ids = tuple(sorted(c.id for c in controls))
        action_id = new_action_id()
        before = action.before(resource, targets)
        try:
            if self.ledger is not None:
                self.ledger.record_action(action_id, action_name, resource.ref, control_ids, before, context)
            result = action.run(ActionRequest(self.clients, resource, targets, controls, context))
            status, detail = result.result, result.detail
        except RemediationError as exc:
            status, detail = FAILED, str(exc)
        except AWS_ERRORS as exc:
            status, detail = FAILED, f"{error_code(exc)}: {error_message(exc)}"
        if self.ledger is not None:
            error = _persist(lambda: self.ledger.finish_action(action_id, status, detail))
            if error:
                log.error("could not record the result of %s: %s", action_id, error)
        log.info("action %s %s on %s: %s", action_id, action_name, resource.ref.key, status)
        outcomes = []
        for decision in group:
            self.telemetry.count("remediations" if status != FAILED else "failures", decision.finding.control.id)
            self._settle(decision, status)
            outcomes.append(Outcome(decision, status, detail, action_id, before))
        return outcomes

    def _settle(self, decision: Decision, result: str) -> None:
        if self.ledger is None:
            return
        error = _persist(lambda: self.ledger.settle_claim(decision.finding, decision.kind, result))
        if error:
            # Unsettled, the claim holds the violation for STALE_CLAIM (15 min), then can be taken again.
            log.error("could not settle the claim of %s: %s", decision.finding.control.id, error)

    # --- record and notify ---------------------------------------------------------------------

    def _record_and_notify(self, context: EventContext, outcome: Outcome, report: RunReport) -> None:
        if outcome.result == DUPLICATE or outcome.decision.kind == REPORT_ONLY:
            return
        if self.ledger is not None:
            try:
                self.ledger.record_decision(context, outcome)
            except AWS_ERRORS as exc:
                self.telemetry.count("failures", outcome.decision.finding.control.id)
                log.error("could not record the decision on %s: %s", outcome.decision.finding.control.id,
                          error_code(exc))
        # Nothing new to tell when the containment already held (e.g. a second state-change event).
        if self.notifier is not None and outcome.result != ALREADY_DONE:
            report.deliveries.append(self.notifier.send(build_alert(context, outcome)))

