"""Text messages: a pluggable sender chosen by ``settings.sms_sender``.

"log" writes each message to the log (a development install sends nothing), "file" appends
it to ``var_dir/sms-outbox.jsonl`` (the demo: read your code there; browser tests too),
"record" keeps them in memory (the test double: tests read ``RecordingSender.sent``), and
"module:attribute" names a callable that takes the settings and returns a sender for a real
SMS gateway.
"""

from __future__ import annotations

import importlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from yiwang.core.settings import Settings
from yiwang.core.timeutil import utcnow

log = logging.getLogger("yiwang.sms")


class SmsSender(Protocol):
    async def send(self, phone: str, text: str) -> None: ...


class LogSender:
    async def send(self, phone: str, text: str) -> None:
        # the number is masked in the log: logs are not a store of personal data
        log.info("sms to %s: %s", phone[:3] + "****" + phone[-4:], text)


@dataclass
class FileSender:
    path: Path

    async def send(self, phone: str, text: str) -> None:
        line = json.dumps(
            {"at": utcnow().isoformat(), "phone": phone, "text": text}, ensure_ascii=False
        )
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")


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
    if name == "file":
        return FileSender(settings.ensure_var_dir() / "sms-outbox.jsonl")
    if name not in _custom:
        module, _, attr = name.partition(":")
        if not attr:
            raise ValueError("sms_sender is 'log', 'file', 'record' or 'module:attribute'")
        _custom[name] = getattr(importlib.import_module(module), attr)(settings)
    return _custom[name]


def recorded() -> RecordingSender:
    """The in-memory sender that ``sms_sender = "record"`` uses."""
    return _recording
