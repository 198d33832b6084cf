"""The dependency index of a sweep, buffered: written in batches rather than one item per resource and subnet."""
from __future__ import annotations

from typing import Any

from ..aws import AWS_ERRORS, error_code
from ..model import ResourceRef
from .base import log


class BufferedIndex:
    """The dependency index of a sweep: what each resource uses is written in batches (`flush`),
    not one item per resource and subnet; reads go to the ledger."""

    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger
        self.entries: list[tuple[ResourceRef, list[ResourceRef], str | None]] = []

    def remember_uses(self, user: ResourceRef, used: list[ResourceRef], environment: str | None = None) -> None:
        self.entries.append((user, list(used), environment))

    def flush(self) -> None:
        entries, self.entries = self.entries, []
        if not entries:
            return
        try:
            self.ledger.remember_many(entries)
        except AWS_ERRORS as exc:  # the index only speeds up later events: never fail the run for it
            log.warning("dependency index: %d entries not written: %s", len(entries), error_code(exc))

    def users_of(self, used: ResourceRef) -> list[ResourceRef]:
        return self.ledger.users_of(used)

    def users_with_environment(self, used: ResourceRef) -> list[tuple[ResourceRef, str | None]]:
        return self.ledger.users_with_environment(used)
