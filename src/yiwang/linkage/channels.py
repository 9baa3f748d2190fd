"""The channels a case arrives through, each with the fields it must bring.

People's channels carry a reporter; machine channels (IoT alerts, AI camera events, 119
alarms) arrive as events from other modules and carry the device's reference and position.
Every channel names its source reference (the hotline's ticket number, the alarm id...):
a second intake with the same reference returns the first case.
"""

from __future__ import annotations

from dataclasses import dataclass

from yiwang.core.i18n import N_


@dataclass(frozen=True)
class Channel:
    name: str
    title: str
    #: fields the intake must carry (besides a description)
    required: tuple[str, ...]
    #: arrives from another system or device (no reporter; the source reference is required)
    machine: bool = False
    #: the category a case of this channel has unless the intake says otherwise
    default_category: str | None = None
    #: the reporter's phone number was verified by a code (public channels)
    verified_phone: bool = False


CHANNELS: dict[str, Channel] = {
    c.name: c
    for c in (
        Channel("12345", N_("12345 hotline"), ("source_ref", "reporter_phone", "place")),
        Channel("patrol", N_("Grid patrol"), ("position",)),
        Channel("hotline", N_("Citizen hotline"), ("source_ref", "reporter_phone", "place")),
        Channel("110", N_("110 non-police"), ("source_ref", "place")),
        Channel("mailbox", N_("Leader mailbox"), ("reporter_name", "reporter_phone", "title")),
        Channel("snap", N_("Snap and report"), ("reporter_phone", "place"), verified_phone=True),
        Channel("open311", N_("Open311 app"), ("place",)),
        Channel("tip", N_("Rewarded tip"), ("reporter_name", "reporter_phone", "place")),
        Channel("iot", N_("IoT alert"), ("source_ref", "position"), machine=True),
        Channel("camera", N_("AI camera event"), ("source_ref", "position"), machine=True),
        Channel(
            "119",
            N_("119 fire alarm"),
            ("source_ref", "place"),
            machine=True,
            default_category="E0402",
        ),
    )
}


def get(name: str) -> Channel | None:
    return CHANNELS.get(name)
