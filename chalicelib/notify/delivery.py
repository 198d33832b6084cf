"""Delivery: every alert to every configured channel, independently, and no failure lost silently.

A failure on one channel never stops the other; it is logged and handed to the ledger (`record_undelivered`)
so that `resend_undelivered` (run by every sweep) can try again. A channel that just failed is paused for a
while, so that an outage does not spend the function's time limit on retries, alert after alert.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import DeliveryError
from .alerts import _fact
from .slack import slack_blocks
from .slack_webhook import SlackWebhook, check_allowed_webhook, redact_urls, resolve_webhook_url
from .sns import publish_sns, sns_batches, topic_region

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..aws import Clients
    from ..model import Finding, Outcome
    from ..settings import Settings

DELIVERED = "delivered"
NOT_CONFIGURED = "not-configured"
DROPPED = "dropped"  # a re-send with nothing to deliver (superseded, refused): settled, not retried
CHANNEL_PAUSE_SECONDS = 60.0
RESEND_GIVE_UP_AFTER = 3  # consecutive failed re-sends on a channel before the sweep leaves it to the next one
UNDELIVERED_RECORD_ATTEMPTS = 3  # each already retried by botocore; then the alert goes to the log whole

log = logging.getLogger("netguard.notify")


class Notifier:
    """Delivers alerts to every configured channel, independently, never losing a failure silently."""

    def __init__(
        self,
        settings: Settings,
        clients: Clients,
        ledger: Any = None,
        slack_sleep: Callable[[float], Any] = time.sleep,
        logger: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.ledger = ledger
        self.slack_sleep = slack_sleep
        self.log = logger or log
        self.clock = clock
        # A channel that just failed (after its own bounded retries) is not tried again for a while:
        # an outage must not spend the function's time limit on retries, alert after alert.
        self._down: dict[str, tuple[float, str]] = {}
        # Told of every alert a channel did not take (the Lambdas count it: metric `undelivered`, alarmed)
        self.on_undelivered: Callable[[str], Any] | None = None

    def send(self, alert: Mapping[str, Any]) -> dict[str, str]:
        """{"sns": ..., "slack": ...}, each "delivered", "failed: <error>" or "not-configured" (Security Hub takes
        findings, not alerts: send_findings)."""
        results = {"sns": NOT_CONFIGURED, "slack": NOT_CONFIGURED}
        if self.settings.alert_topic_arn:
            results["sns"] = self._deliver("sns", alert, self._send_sns)
        if self.settings.slack_webhook_param:
            results["slack"] = self._deliver("slack", alert, self._send_slack)
        return results

    def send_all(self, alerts: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
        """send() for the alerts of one run, with the same results and failure handling per alert:
        SNS takes them in PublishBatch calls (10 at most, 256 KB in all), Slack one post each."""
        if len(alerts) <= 1:
            return [self.send(alert) for alert in alerts]
        results = [{"sns": NOT_CONFIGURED, "slack": NOT_CONFIGURED} for _ in alerts]
        if self.settings.alert_topic_arn:
            for index, result in enumerate(self._deliver_sns_batches(alerts)):
                results[index]["sns"] = result
        if self.settings.slack_webhook_param:
            for index, alert in enumerate(alerts):
                results[index]["slack"] = self._deliver("slack", alert, self._send_slack)
        return results

    def send_findings(self, findings: Sequence[Finding], outcomes: Sequence[Outcome]) -> dict[str, int]:
        """A run's findings to Security Hub when NETGUARD_SECURITY_HUB is on (notify/securityhub.py): counts
        of findings imported, resolved and failed (each failure recorded like an alert's)."""
        if not self.settings.security_hub or not findings:
            return {}
        return self._security_hub().send(findings, outcomes)

    def _security_hub(self) -> Any:
        from .securityhub import SecurityHubChannel  # noqa: PLC0415 - only where the channel is on

        return SecurityHubChannel(self.clients, self.ledger,
                                  lambda wrapped, error: self._undelivered(wrapped, "securityhub", error),
                                  self.settings.security_hub_docs_url)

    def _deliver_sns_batches(self, alerts: Sequence[Mapping[str, Any]]) -> list[str]:
        """SNS's result for each alert, sent in PublishBatch calls: the first alone (an outage costs
        one call, then pauses the channel), the others concurrently."""
        from ..aws import AWS_ERRORS, concurrently, error_code, error_message  # noqa: PLC0415

        topic_arn = str(self.settings.alert_topic_arn)
        out = [""] * len(alerts)
        batches = sns_batches(alerts)
        for index in set(range(len(alerts))) - {i for batch in batches for i, _ in batch}:
            out[index] = self._deliver("sns", alerts[index], self._send_sns)  # too big even alone: says why

        def publish(batch: list[tuple[int, dict[str, Any]]]) -> dict[int, str]:
            """The alerts of `batch` SNS did not take: index -> why."""
            paused = self._paused("sns")
            if paused is not None:
                return {i: paused for i, _ in batch}
            try:
                answer = self.clients.client("sns", topic_region(topic_arn)).publish_batch(
                    TopicArn=topic_arn, PublishBatchRequestEntries=[entry for _, entry in batch])
            except AWS_ERRORS as exc:
                error = redact_urls(f"SNS publish to {topic_arn} failed: {error_code(exc)}: {error_message(exc)}")
            except Exception as exc:  # noqa: BLE001 - the same isolation boundary as _deliver
                error = redact_urls(f"unexpected {type(exc).__name__}: {exc}")
            else:
                self._down.pop("sns", None)
                return {int(f["Id"]): redact_urls(f"SNS publish to {topic_arn} failed: {f.get('Code')}: "
                                                  f"{f.get('Message', '')}") for f in answer.get("Failed", [])}
            self._pause("sns", error)
            return {i: error for i, _ in batch}

        failures = [publish(batch) for batch in batches[:1]]
        failures += concurrently(publish, batches[1:], self.settings.read_concurrency, "netguard-sns")
        for batch, failed in zip(batches, failures, strict=True):
            for index, _ in batch:
                if index in failed:
                    self._undelivered(alerts[index], "sns", failed[index])
                    out[index] = f"failed: {failed[index]}"
                else:
                    out[index] = DELIVERED
        return out

    def _paused(self, channel: str) -> str | None:
        """Why `channel` is not tried now (it failed within CHANNEL_PAUSE_SECONDS), or None."""
        down = self._down.get(channel)
        if down is not None and self.clock() < down[0]:
            return f"not attempted: {channel} failed {CHANNEL_PAUSE_SECONDS:.0f} s ago or less ({down[1]})"
        return None

    def _pause(self, channel: str, error: str) -> None:
        self._down[channel] = (self.clock() + CHANNEL_PAUSE_SECONDS, error[:200])

    def resend(self, alert: Mapping[str, Any], channel: str) -> str:
        """Deliver an alert a channel did not take earlier, on that channel only: "delivered" or
        "failed: ..." (not recorded again: the caller keeps the original record until it succeeds)."""
        if channel == "securityhub":
            if not self.settings.security_hub:
                return "failed: channel securityhub is not configured"
            return str(self._security_hub().resend(alert, self.settings.account_allowed))
        send = {"sns": self._send_sns, "slack": self._send_slack}.get(channel)
        configured = {"sns": self.settings.alert_topic_arn, "slack": self.settings.slack_webhook_param}.get(channel)
        if send is None or not configured:
            return f"failed: channel {channel} is not configured"
        paused = self._paused(channel)
        if paused is not None:
            return f"failed: {paused}"
        try:
            send(alert)
        except Exception as exc:  # noqa: BLE001 - same isolation as _deliver
            error = redact_urls(str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}")
            self._pause(channel, error)
            return f"failed: {error}"
        self._down.pop(channel, None)
        return DELIVERED

    def _send_sns(self, alert: Mapping[str, Any]) -> None:
        topic_arn = str(self.settings.alert_topic_arn)
        publish_sns(self.clients.client("sns", topic_region(topic_arn)), topic_arn, alert)

    def _send_slack(self, alert: Mapping[str, Any]) -> None:
        url = resolve_webhook_url(str(self.settings.slack_webhook_param), self.clients)
        check_allowed_webhook(url, self.settings.slack_allowed_urls)
        SlackWebhook(url, sleep=self.slack_sleep, logger=self.log).post(slack_blocks(alert))

    def _deliver(self, channel: str, alert: Mapping[str, Any], send: Callable[[Mapping[str, Any]], None]) -> str:
        paused = self._paused(channel)
        if paused is not None:
            self._undelivered(alert, channel, paused)
            return f"failed: {paused}"
        try:
            send(alert)
        except DeliveryError as exc:
            error = redact_urls(str(exc))
        except Exception as exc:  # noqa: BLE001 - isolation boundary: one channel's bug must not stop the other
            error = redact_urls(f"unexpected {type(exc).__name__}: {exc}")
        else:
            self._down.pop(channel, None)
            return DELIVERED
        self._pause(channel, error)
        self._undelivered(alert, channel, error)
        return f"failed: {error}"

    def _undelivered(self, alert: Mapping[str, Any], channel: str, error: str) -> None:
        self.log.warning("alert %s not delivered on %s: %s", _fact(alert, "alert_id"), channel, error)
        if self.on_undelivered is not None:
            self.on_undelivered(channel)
        if self.ledger is None:
            return
        failure = ""
        for _ in range(UNDELIVERED_RECORD_ATTEMPTS):
            try:
                self.ledger.record_undelivered(alert, channel, error)
                return
            except Exception as exc:  # noqa: BLE001 - duck-typed ledger; its failure must still be visible
                failure = redact_urls(f"{type(exc).__name__}: {exc}")
        # Not in the ledger either: the log line carries the whole alert, so it can still be recovered.
        self.log.error("alert %s: recording the %s delivery failure failed too (%s); the alert: %s",
                       _fact(alert, "alert_id"), channel, failure,
                       redact_urls(json.dumps(alert, sort_keys=True, default=str)))


def resend_undelivered(ledger: Any, notifier: Notifier, time_left: Callable[[], float] | None = None,
                       margin: float | None = None) -> dict[str, int]:
    """Try again every alert a channel did not take (ledger `alert#undelivered`), oldest first: a delivered
    one is removed from the ledger, and so is one with nothing to deliver any more (a Security Hub finding
    resolved since: "dropped", counted when there are some); a failed one stays for the next try. Run by
    every sweep. A channel that fails RESEND_GIVE_UP_AFTER times in a row is not tried again in this run;
    what is left when the invocation's time runs short (`time_left` below `margin` seconds; by default half
    of what was left when it started, the rest being the sweep's) is counted and left for the next sweep."""
    counts = {"resent": 0, "still_undelivered": 0, "left_for_next_sweep": 0}  # and "dropped" when some were
    if time_left is not None and margin is None:
        margin = time_left() / 2
    failures: dict[str, int] = {}  # consecutive failures by channel: after 3, that channel waits for the next sweep
    for item in ledger.undelivered():
        channel = item["channel"]
        if failures.get(channel, 0) >= RESEND_GIVE_UP_AFTER:
            counts["still_undelivered"] += 1
            continue
        if time_left is not None and margin is not None and time_left() < margin:
            counts["left_for_next_sweep"] += 1
            continue
        notifier._down.pop(channel, None)  # a resend is tried even right after a failure (bounded above)
        result = notifier.resend(item["alert"], channel)
        if result == DELIVERED or result.startswith(DROPPED):
            if result != DELIVERED:
                log.warning("undelivered alert on %s not re-sent: %s", channel, result)
            ledger.settle_undelivered(item["sk"])
            kind = "resent" if result == DELIVERED else "dropped"
            counts[kind] = counts.get(kind, 0) + 1
            failures[channel] = 0
        else:
            counts["still_undelivered"] += 1
            failures[channel] = failures.get(channel, 0) + 1
    if any(counts.values()):
        log.info("undelivered alerts: %d re-sent, %d still undelivered, %d left for the next sweep (time)",
                 counts["resent"], counts["still_undelivered"], counts["left_for_next_sweep"])
    return counts
