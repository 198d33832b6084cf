"""Configuration from the environment, read once per invocation (never at import).

Every variable is documented in README.md ("Configuration").
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

from .errors import ConfigError

STAGE_MODES = ("enforce", "alert", "dry-run")
CONTROL_MODES = ("enforce", "alert", "off")


def _parse_control_modes(raw: str) -> dict[str, str]:
    """`NB.4=enforce,SG.2=alert` -> {"NB.4": "enforce", "SG.2": "alert"}."""
    modes: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        control_id, sep, mode = item.partition("=")
        control_id, mode = control_id.strip(), mode.strip()
        if not sep or not control_id or mode not in CONTROL_MODES:
            raise ConfigError(
                f"NETGUARD_CONTROL_MODES: {item!r} is not CONTROL=MODE with MODE one of {', '.join(CONTROL_MODES)}"
            )
        modes[control_id] = mode
    return modes


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: {raw!r} is not a whole number") from exc
    if value <= 0:
        raise ConfigError(f"{name}: must be positive, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    mode: str = "enforce"
    control_modes: Mapping[str, str] = field(default_factory=dict)
    ledger_table: str | None = None
    alert_topic_arn: str | None = None
    slack_webhook_param: str | None = None
    policy_dir: str | None = None
    dedup_hours: int = 24
    ledger_retention_days: int = 400
    idempotency_hours: int = 24

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        mode = env.get("NETGUARD_MODE", "enforce").strip().lower() or "enforce"
        if mode not in STAGE_MODES:
            raise ConfigError(f"NETGUARD_MODE: {mode!r} is not one of {', '.join(STAGE_MODES)}")
        return cls(
            mode=mode,
            control_modes=_parse_control_modes(env.get("NETGUARD_CONTROL_MODES", "")),
            ledger_table=env.get("NETGUARD_LEDGER_TABLE") or None,
            alert_topic_arn=env.get("NETGUARD_ALERT_TOPIC_ARN") or None,
            slack_webhook_param=env.get("NETGUARD_SLACK_WEBHOOK_PARAM") or None,
            policy_dir=env.get("NETGUARD_POLICY_DIR") or None,
            dedup_hours=_positive_int(env, "NETGUARD_DEDUP_HOURS", 24),
            ledger_retention_days=_positive_int(env, "NETGUARD_LEDGER_RETENTION_DAYS", 400),
            idempotency_hours=_positive_int(env, "NETGUARD_IDEMPOTENCY_HOURS", 24),
        )
