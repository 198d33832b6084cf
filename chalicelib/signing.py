"""Signing the ledger's action records, so that `netguard restore` acts only on what netguard did.

Anyone who can write the ledger table could otherwise put in an "action" whose before-state re-opens a
security group to the world, and have an operator restore it. netguard's functions sign each action
record they settle with an HMAC key in KMS (NETGUARD_LEDGER_KEY_ID): only their roles may generate a MAC
with it (the key policy of deploy/netguard-stack.yaml), while the operator running restore may verify.

What is signed: the action's id, name, resource, controls, before-state, event id, start time, result
and detail, as canonical JSON, hashed (KMS takes at most 4,096 bytes: a before-state can be larger).
"""
from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from .aws import Clients
from .model import canonical_json

MAC_ALGORITHM = "HMAC_SHA_256"
SIGNED_FIELDS = ("action", "resource", "controls", "before", "event_id", "at", "result", "detail")


def action_message(action_id: str, item: Mapping[str, Any]) -> bytes:
    """The bytes a MAC covers for one action record (`item` as the ledger holds it: `before` may be the
    canonical JSON text of the before-state, or the state itself)."""
    fields = {k: item.get(k) for k in SIGNED_FIELDS}
    if isinstance(fields["before"], str):
        fields["before"] = json.loads(fields["before"])
    fields["controls"] = list(fields["controls"] or [])
    fields["action_id"] = action_id
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).digest()


def key_region(key_id: str) -> str | None:
    parts = key_id.split(":")
    return parts[3] if key_id.startswith("arn:") and len(parts) > 5 else None


class Signer:
    """MACs of action records with one KMS HMAC key (verified by restore.py, with the operator's credentials)."""

    def __init__(self, key_id: str, clients: Clients) -> None:
        self.key_id, self.clients = key_id, clients

    def mac_of(self, action_id: str, item: Mapping[str, Any]) -> str:
        answer = self.clients.client("kms", key_region(self.key_id)).generate_mac(
            KeyId=self.key_id, MacAlgorithm=MAC_ALGORITHM, Message=action_message(action_id, item))
        return base64.b64encode(answer["Mac"]).decode("ascii")


def signer_for(settings: Any, clients: Clients) -> Signer | None:
    """The signer of NETGUARD_LEDGER_KEY_ID (None without one: records are not signed, and restore refuses
    those of a DynamoDB ledger unless told to trust them)."""
    return Signer(settings.ledger_key_id, clients) if settings.ledger_key_id else None
