"""Telling reporters what became of their case: a text message when it is closed (including
each duplicate closed with its parent) or not filed. Runs as an outbox handler, so a message
is sent once the change is committed, and retried if the gateway fails."""

from __future__ import annotations

from yiwang.core.events.service import Event, HandlerContext
from yiwang.core.security.personal import PersonalData
from yiwang.core.sms import get_sender
from yiwang.linkage.models import Case

MESSAGES = {
    "close": "【一网统管】您反映的问题（编号{code}）已办结，欢迎评价。",
    "reject": "【一网统管】您反映的问题（编号{code}）未予立案，原因：{note}",
}


async def notify_reporter(ctx: HandlerContext, event: Event) -> None:
    action = str(event.payload.get("action"))
    if action not in MESSAGES:
        return
    case = await ctx.session.get(Case, int(event.aggregate_id))
    if case is None or not case.reporter_phone:
        return
    phone = PersonalData(ctx.settings).open("linkage_case", "reporter_phone", case.reporter_phone)
    text = MESSAGES[action].format(code=event.payload.get("code"), note=case.reject_reason or "")
    await get_sender(ctx.settings).send(phone, text)
