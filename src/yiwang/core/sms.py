"""Text messages: a pluggable sender chosen by ``settings.sms_sender``.

"log" writes each message to the log (a development install sends nothing), "record" keeps
them in memory (the test double: tests read ``RecordingSender.sent``), and "module:attribute"
names a callable that takes the settings and returns a sender for a real SMS gateway.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Protocol

from yiwang.core.settings import Settings

log = logging.getLogger("yiwang.sms")


class SmsSender(Protocol):
    async def send(self, phone: str, text: str) -> None: ...


class LogSender:
    async def send(self, phone: str, text: str) -> None:
        # the number is masked in the log: logs are not a store of personal data
        log.info("sms to %s: %s", phone[:3] + "****" + phone[-4:], text)


@dataclass
class RecordingSender:
    sent: list[tuple[str, str]] = field(default_factory=list)

    async def send(self, phone: str, text: str) -> None:
        self.sent.append((phone, text))

    def to(self, phone: str) -> list[str]:
        return [text for p, text in self.sent if p == phone]


_recording = RecordingSender()
_custom: dict[str, SmsSender] = {}


def get_sender(settings: Settings) -> SmsSender:
    name = settings.sms_sender
    if name == "log":
        return LogSender()
    if name == "record":
        return _recording
    if name not in _custom:
        module, _, attr = name.partition(":")
        if not attr:
            raise ValueError("sms_sender is 'log', 'record' or 'module:attribute'")
        _custom[name] = getattr(importlib.import_module(module), attr)(settings)
    return _custom[name]


def recorded() -> RecordingSender:
    """The in-memory sender that ``sms_sender = "record"`` uses."""
    return _recording
