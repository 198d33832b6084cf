"""Pipeline: runs the stages in order for one trigger, isolating failures per resource and per action.

trigger -> collect -> evaluate -> decide -> act (claimed once, before-state recorded first)
-> record (ledger) + notify (SNS, Slack) + count (metrics).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .aws import AWS_ERRORS, Clients, error_code, error_message, is_retryable
from .collect import BulkTags, Collector, sagemaker_tags
from .decide import decide
from .errors import RemediationError
from .evaluate import evaluate
from .ledger import BufferedIndex, Ledger, budget_window, new_action_id, window_end
from .model import (
    ALREADY_DONE,
    DEFERRED,
    DUPLICATE,
    EXEMPT,
    FAILED,
    LIMITED,
    NO_ACTION,
    NON_COMPLIANT,
    REMEDIATE,
    REPORT_ONLY,
    SEVERITIES,
    Decision,
    EventContext,
    Finding,
    Outcome,
    Resource,
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
    def send_all(self, alerts: list[dict[str, Any]]) -> list[dict[str, str]]: ...
    def send_findings(self, findings: list[Finding], outcomes: list[Outcome]) -> dict[str, int]: ...


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
    security_hub: dict[str, int] = field(default_factory=dict)  # findings imported, resolved, failed

    def limited_refs(self) -> list[tuple[ResourceRef, str]]:
        """What the blast-radius limit held back, and why: looked at again when its window ends."""
        return list({o.decision.finding.resource.ref: o.detail for o in self.outcomes if o.result == LIMITED}.items())

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


@dataclass
class Settlement:
    """What one run settles in the ledger once it has acted."""
    claims: list[tuple[Finding, str, str]] = field(default_factory=list)  # (finding, kind, result)
    actions: list[tuple[str, str, str]] = field(default_factory=list)  # (action id, result, detail)
    decisions: list[Outcome] = field(default_factory=list)
    created: list[tuple[Resource, tuple[ResourceRef, ...]]] = field(default_factory=list)  # for the index


def most_severe(severities: Iterable[str]) -> str:
    return min(severities, key=lambda s: SEVERITIES.index(s) if s in SEVERITIES else len(SEVERITIES))


class Pipeline:
    def __init__(self, policy: Policy, settings: Settings, clients: Clients, ledger: Ledger | None,
                 notifier: Notifier | None, telemetry: Telemetry | None = None,
                 today: Callable[[], dt.date] | None = None, report_only: bool = False,
                 collector: Collector | None = None) -> None:
        self.policy, self.settings, self.clients = policy, settings, clients
        self.ledger, self.notifier = ledger, notifier
        self.telemetry = telemetry or NoTelemetry()
        self.today = today or (lambda: dt.datetime.now(dt.UTC).date())
        self.report_only = report_only
        self.collector = collector  # shared lookups for a scan; otherwise fresh per run

    def run(self, trigger: Trigger, follow: bool = True) -> RunReport:
        """One trigger through every stage. follow=False: see Collector.collect (sweeps)."""
        context = trigger.context
        report = RunReport(context)
        # what the resources use (the dependency index) is written once, after acting
        collector = self.collector or Collector(
            self.clients, {t for c in self.policy.controls for t in c.resource_types},
            index=BufferedIndex(self.ledger) if self.ledger is not None else None,
            workers=self.settings.read_concurrency)
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
        decided: list[tuple[Decision, EventContext]] = []
        named_refs = set(trigger.refs)  # a sweep's chunk names hundreds
        for finding in report.findings:
            self.telemetry.count("evaluations", finding.control.id)
            if finding.status == NON_COMPLIANT:
                self.telemetry.count("violations", finding.control.id)
            named = finding.resource.ref in named_refs
            decision = decide(finding, self.policy, self.settings, today, self.report_only,
                              context if named else anonymous)
            if decision is not None:
                decided.append((decision, context if named else anonymous))
        report.outcomes = self.act(context, self._with_current_tags(decided, today, report), collector.index)
        if isinstance(collector.index, BufferedIndex):
            collector.index.flush()
        self._notify(context, report)
        if self.notifier is not None and not self.report_only:  # every finding read: violations and resolutions
            report.security_hub = self.notifier.send_findings(report.findings, report.outcomes)
        if trigger.exemption_tags and not self.report_only:
            self._notify_exemption_tags(trigger, report)
        return report

    def _notify_exemption_tags(self, trigger: Trigger, report: RunReport) -> None:
        """Anyone who can tag can write netguard:exempt*: every change is alerted, with who made it
        and what netguard makes of it now (the run's decisions on those resources)."""
        from .notify import build_notice  # noqa: PLC0415

        context = trigger.context
        changes = ", ".join(f"{key}={value!r}" if value is not None else f"{key} removed"
                            for key, value in trigger.exemption_tags)
        notices = []
        for ref in trigger.refs:
            exempt = sorted({o.decision.finding.control.id for o in report.outcomes
                             if o.decision.finding.resource.ref == ref and o.decision.kind == EXEMPT})
            refused = sorted({f"{o.decision.finding.control.id}: {o.decision.reason}" for o in report.outcomes
                              if o.decision.finding.resource.ref == ref and o.decision.kind != EXEMPT
                              and "ignored" in o.decision.reason and "exemption" in o.decision.reason})
            reading = (f"exempt now from {', '.join(exempt)}" if exempt else "exempt from no failing control") + (
                f"; not exempt: {'; '.join(refused)}" if refused else "")
            text = (f"{context.principal or 'an unknown principal'} changed exemption tags on {ref.resource_type} "
                    f"{ref.resource_id} ({ref.account}/{ref.region}): {changes}. netguard's reading: {reading}. "
                    f"Event {context.event_id}.")
            log.warning("exemption tags changed: %s", text)
            notices.append(build_notice(f"exemption-{context.event_id}-{ref.resource_id}"[:128],
                                        "exemption tag changed", text, account=ref.account))
        if self.notifier is not None:
            report.deliveries.extend(self.notifier.send_all(notices))

    def _with_current_tags(self, decided: list[tuple[Decision, EventContext]], today: dt.date,
                           report: RunReport) -> list[Decision]:
        """Before acting on a resource whose tags were read in bulk (sweeps, scans: minutes old, from
        an eventually consistent index), read them again and decide again if they changed, so that
        an exemption added since is honoured (the report then holds the finding with those tags).
        One ListTags per resource acted on."""
        current: dict[str, Mapping[str, str] | None] = {}
        out: list[Decision] = []
        for decision, decision_context in decided:
            resource = decision.finding.resource
            if decision.kind != REMEDIATE or not isinstance(resource.tags, BulkTags):
                out.append(decision)
                continue
            if resource.arn not in current:
                ref = resource.ref
                try:
                    current[resource.arn] = sagemaker_tags(self.clients.client("sagemaker", ref.region, ref.account),
                                                           resource.arn)
                except AWS_ERRORS as exc:
                    log.warning("tags of %s not read again before acting (%s): acting on those read at the "
                                "start of the sweep", ref.key, error_code(exc))
                    current[resource.arn] = None
            tags = current[resource.arn]
            if tags is None or tags == dict(resource.tags):
                out.append(decision)
                continue
            finding = dataclasses.replace(decision.finding, resource=dataclasses.replace(resource, tags=tags))
            report.findings = [finding if f is decision.finding else f for f in report.findings]
            again = decide(finding, self.policy, self.settings, today, self.report_only, decision_context)
            log.info("tags of %s changed since the sweep read them: %s decided again (%s)", resource.ref.key,
                     finding.control.id, again.kind if again else "nothing to do")
            if again is not None:
                out.append(again)
        return out

    # --- act -----------------------------------------------------------------------------------

    def act(self, context: EventContext, decisions: list[Decision], index: Any = None) -> list[Outcome]:
        """Claim each decision once, then run each remediation once per resource for all its findings.
        The claims (one conditional write each) and each action's before-state are written before
        anything is done; what the run settles (claims' results, actions' results, the decisions)
        is written at the end, in as few calls as the ledger allows. What an action created for a
        resource (a flow log) goes into the dependency `index`."""
        outcomes: list[Outcome] = []
        done = Settlement()
        groups: dict[tuple[str, ResourceRef], list[Decision]] = {}
        claims = self._claim_all(context, [d for d in decisions if d.kind != REPORT_ONLY])
        for decision in decisions:
            if decision.kind == REPORT_ONLY:
                outcomes.append(Outcome(decision, NO_ACTION, decision.reason))
                continue
            claimed = claims[id(decision)]
            if isinstance(claimed, Exception):
                # Without a claim we cannot prove we act once: do nothing, say so.
                self.telemetry.count("failures", decision.finding.control.id)
                outcomes.append(Outcome(decision, FAILED,
                                        f"{error_code(claimed)}: ledger unavailable, no action taken"))
                continue
            if not claimed:
                log.info("duplicate: %s on %s already handled (%s)", decision.finding.control.id,
                         decision.finding.resource.ref.key, decision.kind)
                outcomes.append(Outcome(decision, DUPLICATE, "already handled by an earlier event"))
                continue
            holds = ACTIONS[decision.action].holds_for if decision.kind == REMEDIATE and decision.action else None
            if holds is not None and holds(decision.finding.resource, decision.finding.control.id):
                outcomes.append(Outcome(decision, ALREADY_DONE, "containment already in place for this control"))
                done.claims.append((decision.finding, decision.kind, ALREADY_DONE))
            elif decision.kind == REMEDIATE and decision.action:
                groups.setdefault((decision.action, decision.finding.resource.ref), []).append(decision)
            else:
                outcomes.append(Outcome(decision, NO_ACTION, decision.reason))
                done.claims.append((decision.finding, decision.kind, NO_ACTION))
        for (action_name, ref), group in groups.items():
            refused = self._over_budget(ref, most_severe(d.finding.control.severity for d in group))
            if refused:
                for decision in group:
                    # settled as failed: not done, a later event or sweep may act
                    done.claims.append((decision.finding, decision.kind, FAILED))
                    outcomes.append(Outcome(decision, LIMITED, refused))
                continue
            outcomes.extend(self._execute(context, action_name, group, done))
        done.decisions = [o for o in outcomes if o.result != DUPLICATE and o.decision.kind != REPORT_ONLY]
        self._settle(context, done)
        for resource, created in done.created if index is not None else ():
            try:
                index.remember_uses(resource.ref, list(created), resource.tags.get("Environment"))
            except AWS_ERRORS as exc:  # the index only speeds up later events: never fail the run for it
                log.warning("could not index what %s now uses: %s", resource.ref.key, error_code(exc))
        return outcomes

    def _claim_all(self, context: EventContext, decisions: list[Decision]) -> dict[int, bool | Exception]:
        """Each decision's claim (True: ours to handle; False: handled already; the error when the
        ledger could not be written), by id(decision): conditional writes, made together
        (`claim_many`: one transaction per hundred)."""
        if self.ledger is None:
            return {id(d): True for d in decisions}
        answers = self.ledger.claim_many([(d.finding, d.kind) for d in decisions], context,
                                         attempts=LEDGER_WRITE_ATTEMPTS)
        return {id(d): answer for d, answer in zip(decisions, answers, strict=True)}

    def _over_budget(self, ref: ResourceRef, severity: str) -> str | None:
        """Blast radius: None if one more enforce action of `severity` is allowed in ref's account and in
        the organization in this window, else why not. The first refusal of a window (per account or
        for the organization, per severity) sends one "limit reached" notice."""
        if self.ledger is None:
            return None
        settings, minutes = self.settings, self.settings.action_window_minutes
        limit = settings.max_actions[severity]
        org_limit = settings.max_actions_org[severity] if settings.org_cap_binds(severity) else None
        try:
            refused, first_refusal = self.ledger.take_action_budget(ref.account, severity, limit, org_limit, minutes)
        except AWS_ERRORS as exc:
            # Without the counter we cannot prove the limit holds: do not act.
            return f"{error_code(exc)}: action budget unavailable, no action taken"
        if refused is None:
            return None
        now = dt.datetime.now(dt.UTC)
        where = f"in account {ref.account}" if refused == "account" else "across all accounts"
        cap = org_limit if refused == "organization" else limit
        again = ("; rechecked when it opens" if self.settings.recheck_queue_url
                 else "; acted on by the next event or sweep after that")
        reason = (f"blast-radius limit reached: {cap} {severity}-severity enforce actions {where} within {minutes} "
                  f"minutes; alerting instead of acting until the window ends at {window_end(now, minutes)}{again}")
        if first_refusal:
            log.warning("%s", reason)
            if self.notifier is not None:
                from .notify import build_notice  # noqa: PLC0415

                scope = ref.account if refused == "account" else "org"
                self.notifier.send(build_notice(f"limit-{scope}-{severity}-{budget_window(now, minutes)}",
                                                "blast-radius limit reached", reason, account=ref.account))
        return reason

    def _execute(self, context: EventContext, action_name: str, group: list[Decision],
                 done: Settlement) -> list[Outcome]:
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
            if result.created:
                done.created.append((resource, result.created))
        except RemediationError as exc:
            status, detail = FAILED, str(exc)
        except AWS_ERRORS as exc:
            status, detail = FAILED, f"{error_code(exc)}: {error_message(exc)}"
        done.actions.append((action_id, status, detail))
        log.info("action %s %s on %s: %s", action_id, action_name, resource.ref.key, status)
        outcomes = []
        for decision in group:
            self.telemetry.count("remediations" if status != FAILED else "failures", decision.finding.control.id)
            done.claims.append((decision.finding, decision.kind, status))
            outcomes.append(Outcome(decision, status, detail, action_id, before))
        return outcomes

    def _settle(self, context: EventContext, done: Settlement) -> None:
        """Write what the run settled. What cannot be written is logged: an unsettled claim holds its
        violation for STALE_CLAIM (15 min), then can be taken again; a decision not recorded is
        still alerted."""
        if self.ledger is None or not (done.claims or done.actions or done.decisions):
            return
        for what, error in self.ledger.settle_run(context, done.claims, done.actions, done.decisions,
                                                  attempts=LEDGER_WRITE_ATTEMPTS):
            self.telemetry.count("failures", "ledger")
            log.error("could not record %s: %s", what, error)

    # --- notify --------------------------------------------------------------------------------

    def _notify(self, context: EventContext, report: RunReport) -> None:
        """One alert per outcome worth telling, all sent together (SNS batches them). Nothing new to
        tell for duplicates, report-only findings, or a containment that already held (e.g. a second
        state-change event)."""
        told = [o for o in report.outcomes
                if o.result not in (DUPLICATE, ALREADY_DONE) and o.decision.kind != REPORT_ONLY]
        if self.notifier is not None and told:
            report.deliveries.extend(self.notifier.send_all([build_alert(context, o) for o in told]))

