"""Machine channels: alerts that other modules publish through the outbox become cases.

Topics and the channel each feeds: ``iot.alert.*`` (a sensor crossed a threshold), ``camera.
event.*`` (an AI algorithm saw something) and ``fire.alarm.*`` (a 119 alarm). The payload
carries the source's own id (``ref``), the position, a description, and optionally a category
code and an urgency. Delivery is at least once; the source reference makes intake
idempotent, so a redelivered event finds its case instead of making a second one. A payload
intake refuses fails the delivery, which retries and then waits in the dead-letter list.
"""

from __future__ import annotations

from typing import Any

from yiwang.core.auth.principal import Principal
from yiwang.core.events.service import Event, HandlerContext
from yiwang.linkage import intake

TOPICS = {"iot.alert.": "iot", "camera.event.": "camera", "fire.alarm.": "119"}


def _number(payload: dict[str, Any], key: str) -> float | None:
    value = payload.get(key)
    return float(value) if isinstance(value, int | float) else None


async def case_from_event(ctx: HandlerContext, event: Event) -> None:
    channel = next(c for prefix, c in TOPICS.items() if event.topic.startswith(prefix))
    p = event.payload
    kind = event.topic.rsplit(".", 1)[-1]
    details = {k: v for k, v in p.items() if k in ("device_id", "reading", "threshold", "level")}
    details["topic"] = event.topic
    await intake.create(
        ctx.session,
        Principal.system(f"{channel}-gateway"),
        ctx.settings,
        intake.CaseIn(
            channel=channel,
            description=str(p.get("description") or kind)[: intake.MAX_DESCRIPTION],
            title=str(p.get("title") or "")[:200],
            lon=_number(p, "lon"),
            lat=_number(p, "lat"),
            address_text=str(p.get("address") or "")[:200],
            category=p.get("category") if isinstance(p.get("category"), str) else None,
            urgency=p.get("urgency") if p.get("urgency") in ("normal", "urgent") else None,
            source_ref=str(p.get("ref") or event.id)[:64],
            details=details,
        ),
    )
