"""The one place AWS clients are made: lazily, cached per (service, region, account), with retries.

Nothing here runs at import. Functions elsewhere take a `Clients` so tests can inject their own.
`AWS_ENDPOINT_URL` (and the per-service variants) are honoured by botocore itself.
"""
from __future__ import annotations

import threading
from typing import Any

RETRY_CONFIG = {"retries": {"mode": "standard", "max_attempts": 5}, "connect_timeout": 5, "read_timeout": 20}


class Clients:
    """A cache of boto3 clients for one run. `session` defaults to a new boto3 Session."""

    def __init__(self, session: Any = None) -> None:
        self._session = session
        self._clients: dict[tuple[str, str | None, str | None], Any] = {}
        self._lock = threading.Lock()

    @property
    def session(self) -> Any:
        if self._session is None:
            import boto3  # noqa: PLC0415 - keep boto3 off the import path of modules that may not need it

            self._session = boto3.session.Session()
        return self._session

    def client(self, service: str, region: str | None = None, account: str | None = None) -> Any:
        """A client for `service` in `region`. `account` is reserved for assume-role (multi-account)."""
        key = (service, region, account)
        with self._lock:
            found = self._clients.get(key)
            if found is None:
                from botocore.config import Config  # noqa: PLC0415

                found = self.session.client(service, region_name=region, config=Config(**RETRY_CONFIG))
                self._clients[key] = found
            return found


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, '' for anything else."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message", "")) or str(exc)
