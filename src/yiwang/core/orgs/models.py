"""Org tree tables."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from yiwang.core.db import Base, UTCDateTime, path_string
from yiwang.core.timeutil import utcnow


class OrgKind(enum.StrEnum):
    DISTRICT = "district"  # 区
    TOWN = "town"  # 镇/街道
    COMMUNITY = "community"  # 社区/村
    GRID = "grid"  # 网格
    DEPARTMENT = "department"  # 委办局
    UNIT = "unit"  # 重点单位, 企业 (external units)


class OrgNode(Base):
    __tablename__ = "org_node"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("org_node.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    #: "/1/4/17/": the ids from the root down to this node, each followed by "/".
    path: Mapped[str] = mapped_column(path_string(512), unique=True, default="")
    depth: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
