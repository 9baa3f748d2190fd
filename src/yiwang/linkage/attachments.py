"""Photos of a case: the reporter's, the department's and the verifier's.

Only JPEG, PNG and WebP pictures are taken, at most ``MAX_BYTES`` and ``MAX_PIXELS``; each is
decoded and encoded again as JPEG, which drops EXIF (positions, phone models) and anything
hidden after the image, after turning it the way its orientation tag says. A thumbnail is
made at the same time. Files live under ``var_dir/attachments`` named by their SHA-256 (on
several servers, that folder is shared storage).
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.audit import service as audit
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import NotFound, ValidationFailed
from yiwang.core.settings import Settings
from yiwang.linkage.models import Attachment

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000
MAX_PER_CASE = 20
FORMATS = {"JPEG", "PNG", "WEBP"}
THUMB = 320
LONG_SIDE = 2560  # larger pictures are scaled down


@dataclass(frozen=True)
class Cleaned:
    data: bytes
    thumb: bytes
    width: int
    height: int
    sha256: str


def clean(data: bytes) -> Cleaned:
    """Check and re-encode a picture (EXIF gone, orientation applied) and make its thumbnail."""
    if not data:
        raise ValidationFailed("The file is empty.", field="photo")
    if len(data) > MAX_BYTES:
        raise ValidationFailed(
            "A photo is at most {max} MB.", field="photo", params={"max": MAX_BYTES // 2**20}
        )
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format not in FORMATS:
                raise ValidationFailed("Send a JPEG, PNG or WebP photo.", field="photo")
            if probe.width * probe.height > MAX_PIXELS:
                raise ValidationFailed("The photo has too many pixels.", field="photo")
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            upright = ImageOps.exif_transpose(image)
            picture = upright.convert("RGB")
    except ValidationFailed:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as exc:
        raise ValidationFailed("Send a JPEG, PNG or WebP photo.", field="photo") from exc
    picture.thumbnail((LONG_SIDE, LONG_SIDE))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=85, optimize=True)  # no exif= : metadata is not copied
    small = picture.copy()
    small.thumbnail((THUMB, THUMB))
    thumb = io.BytesIO()
    small.save(thumb, "JPEG", quality=80)
    body = out.getvalue()
    return Cleaned(
        body, thumb.getvalue(), picture.width, picture.height, hashlib.sha256(body).hexdigest()
    )


def _folder(settings: Settings) -> Path:
    return settings.var_dir / "attachments"


def path_of(settings: Settings, sha256: str, *, thumb: bool = False) -> Path:
    return _folder(settings) / sha256[:2] / (f"{sha256}.thumb.jpg" if thumb else f"{sha256}.jpg")


def _write(path: Path, data: bytes) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


async def store(
    session: AsyncSession,
    settings: Settings,
    actor: Principal,
    case_id: int,
    data: bytes,
    *,
    name: str = "",
    role: str,
) -> Attachment:
    """Keep a cleaned photo of a case (the caller has checked the actor may add it)."""
    count = len(
        (await session.execute(select(Attachment.id).where(Attachment.case_id == case_id))).all()
    )
    if count >= MAX_PER_CASE:
        raise ValidationFailed(
            "A case holds at most {max} photos.", field="photo", params={"max": MAX_PER_CASE}
        )
    cleaned = clean(data)
    _write(path_of(settings, cleaned.sha256), cleaned.data)
    _write(path_of(settings, cleaned.sha256, thumb=True), cleaned.thumb)
    row = Attachment(
        case_id=case_id,
        sha256=cleaned.sha256,
        size=len(cleaned.data),
        width=cleaned.width,
        height=cleaned.height,
        original_name=os.path.basename(name)[:128],
        uploaded_by=actor.user_id,
        uploaded_by_name=actor.username,
        role=role,
    )
    session.add(row)
    await session.flush()
    await audit.record(
        session,
        actor,
        "case.attach",
        "case",
        case_id,
        details={"attachment_id": row.id, "role": role},
    )
    return row


async def require_own(
    session: AsyncSession, actor: Principal, case_id: int, ids: list[int]
) -> list[Attachment]:
    """The photos exist, belong to this case, and this actor took them."""
    rows = {
        a.id: a
        for a in (await session.execute(select(Attachment).where(Attachment.id.in_(ids)))).scalars()
    }
    for attachment_id in ids:
        row = rows.get(attachment_id)
        if row is None or row.case_id != case_id or row.uploaded_by != actor.user_id:
            raise ValidationFailed(
                "Photo {id} is not one you added to this case.",
                field="photos",
                params={"id": attachment_id},
            )
    return [rows[i] for i in ids]


async def of_case(session: AsyncSession, case_id: int) -> list[Attachment]:
    return list(
        (
            await session.execute(
                select(Attachment).where(Attachment.case_id == case_id).order_by(Attachment.id)
            )
        ).scalars()
    )


async def get(session: AsyncSession, attachment_id: int) -> Attachment:
    row = await session.get(Attachment, attachment_id)
    if row is None:
        raise NotFound(params={"object": "attachment", "id": attachment_id})
    return row
