"""Errors the store raises on purpose."""

from __future__ import annotations

from borderwatch.errors import BorderwatchError


class StoreError(BorderwatchError):
    """The store cannot do what was asked: bad URL, unreachable database, unknown schema."""


class UnknownAlertError(StoreError, LookupError):
    """An operator action names an alert id the store has never recorded."""

    def __init__(self, alert_id: str):
        self.alert_id = alert_id
        super().__init__(f"unknown alert id {alert_id!r}")

    def __reduce__(self) -> tuple[type[UnknownAlertError], tuple[str]]:
        # Rebuilt from the alert id, not the message, when it crosses a process boundary.
        return (type(self), (self.alert_id,))


class AlertActionError(StoreError, ValueError):
    """An operator action that the alert's state or the arguments do not allow."""
