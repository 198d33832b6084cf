"""The one exception hierarchy of netguard."""


class NetguardError(Exception):
    """Base of every error netguard raises on purpose."""


class ConfigError(NetguardError):
    """The environment or command line is not usable (bad mode, missing table name...)."""


class PolicyError(NetguardError):
    """A policy file is invalid. The message names the file, the control id and the reason."""


class InvalidEvent(NetguardError):
    """An event is malformed: it is logged with its id and skipped, never acted on."""

    def __init__(self, reason: str, event_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id


class IgnoredEvent(NetguardError):
    """A well-formed event netguard does not act on (another source, a failed call): skipped."""

    def __init__(self, reason: str, event_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id


class RemediationError(NetguardError):
    """A remediation call failed; the message carries the AWS error code and text."""


class DeliveryError(NetguardError):
    """An alert could not be delivered on one channel."""
