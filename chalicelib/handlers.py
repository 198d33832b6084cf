"""Lambda entry points: each turns a trigger's event into a Trigger and runs the pipeline once.

Cross-cutting work lives here and in handler_support so app.py stays wiring: the tolerant event
envelope, structured logging with the event id as correlation id, EMF metrics by control, event-level
idempotency (Powertools, in the ledger table), and the per-container runtime (settings, policy,
clients) built on the first invocation, not at import. A malformed or foreign event is logged with
its id and skipped: it never crashes the function and never leads to an action.

Each trigger's handler lives in its own module (handler_events, handler_config_rule, handler_recheck,
handler_sweep) and asks for the runtime through the `runtime` it is given: this module's, so that
`handlers.runtime.cache_clear()` and a replaced `handlers.make_clients` reach every handler. Every
name other code imports from chalicelib.handlers stays importable from here.
"""
from __future__ import annotations

import datetime as dt  # noqa: F401 - kept as handlers.dt: tests move the clock of the recheck handler through it
import functools
import logging
import os
from typing import Any

from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from chalice.app import CloudWatchEvent

from . import handler_config_rule, handler_events, handler_recheck, handler_sweep
from .aws import Clients
from .errors import ConfigError
from .handler_config_rule import ConfigRuleError
from .handler_events import covered_types, event_patterns
from .handler_recheck import RecheckRetry
from .handler_support import (
    METRICS_NAMESPACE,
    SERVICE,
    EmfTelemetry,
    Runtime,
    TolerantEvent,
    logger,
    schedule_rechecks,
    summary,
    tolerant,
)
from .handler_support import loggable as _loggable  # the old names: reliability/fuzz.py imports _loggable
from .handler_support import sqs_batch as _batch
from .policy import load_policy
from .settings import Settings

__all__ = [
    "METRICS_NAMESPACE", "SERVICE", "ConfigRuleError", "EmfTelemetry", "RecheckRetry", "Runtime", "TolerantEvent",
    "_batch", "_loggable", "config_rule", "covered_types", "event_patterns", "logger",
    "make_clients", "on_api_call", "on_compliance_change", "on_state_change", "recheck", "runtime",
    "schedule_rechecks", "summary", "sweep", "sweep_worker", "tolerant",
]


def make_clients(settings: Settings) -> Clients:
    """The container's AWS clients (tests replace this with clients on their mock account)."""
    return Clients.for_settings(settings)


@functools.lru_cache(maxsize=1)
def runtime() -> Runtime:
    """Everything an invocation needs, built once per container on first use."""
    from aws_lambda_powertools.utilities.idempotency import (  # noqa: PLC0415 - first invocation only
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    from .ledger import DynamoLedger  # noqa: PLC0415 - the engine: first invocation only (cold start)
    from .notify import Notifier  # noqa: PLC0415
    from .signing import signer_for  # noqa: PLC0415

    # The stage modules log through standard loggers under "netguard": same JSON lines, same correlation id.
    logging.getLogger("netguard")
    copy_config_to_registered_loggers(source_logger=logger, include={"netguard"})
    settings = Settings.from_env()
    if not settings.ledger_table:
        raise ConfigError("NETGUARD_LEDGER_TABLE is not set: netguard will not act without its ledger")
    clients = make_clients(settings)
    ledger = DynamoLedger(settings.ledger_table, clients, dedup_hours=settings.dedup_hours,
                          retention_days=settings.ledger_retention_days, workers=settings.read_concurrency,
                          signer=signer_for(settings, clients), finished_days=settings.job_lookback_days)
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.ledger_table, key_attr="pk", sort_key_attr="sk", expiry_attr="expires_at",
        static_pk_value=f"idempotency#{os.environ.get('AWS_LAMBDA_FUNCTION_NAME', 'netguard')}",
        boto3_client=clients.client("dynamodb"))
    config = IdempotencyConfig(event_key_jmespath="id", expires_after_seconds=settings.idempotency_hours * 3600)
    idempotent = functools.partial(idempotent_function, data_keyword_argument="event",
                                   persistence_store=persistence, config=config)
    notifier = Notifier(settings, clients, ledger=ledger)
    notifier.on_undelivered = lambda channel: EmfTelemetry.emit("undelivered", "alerts")  # alarmed by the stack
    return Runtime(settings, load_policy(settings.policy_dir), clients, ledger, notifier, idempotent, config)


def on_api_call(event: CloudWatchEvent) -> dict[str, Any]:
    return handler_events.handle_event("on_api_call", event, runtime)


def on_state_change(event: CloudWatchEvent) -> dict[str, Any]:
    return handler_events.handle_event("on_state_change", event, runtime)


def on_compliance_change(event: CloudWatchEvent) -> dict[str, Any]:
    return handler_events.handle_event("on_compliance_change", event, runtime)


def config_rule(event: Any, context: Any) -> dict[str, Any]:
    """The custom Config rule: evaluate what Config names, answer with PutEvaluations (configrule.py)."""
    return handler_config_rule.config_rule(event, context, runtime)


def recheck(event: Any) -> dict[str, Any]:
    """Deferred decisions and retryable failures, looked at again (recheck.py)."""
    return handler_recheck.recheck(event, runtime)


def sweep(event: Any) -> dict[str, Any]:
    """Scheduled: plan the sweep and send one task per account-region (sweep.py)."""
    return handler_sweep.sweep(event, runtime)


def sweep_worker(event: Any) -> dict[str, Any]:
    """One account-region of a sweep per message (sweep.py)."""
    return handler_sweep.sweep_worker(event, runtime)
