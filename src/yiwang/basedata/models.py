"""Base-data tables: the standard map (areas, grids), roads, standard addresses, buildings.

Geometries are stored as WKB (compact, read back in bulk by ``shapely.from_wkb``) with their
bounding box and a representative point in plain columns; every point carries its H3 cell
(``yiwang.geo.cells``) in an indexed BIGINT for near/bbox queries on any database. Each
record carries ``version`` for conflict detection (an update names the version it read).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from yiwang.core.db import Base, JSONText, UTCDateTime
from yiwang.core.timeutil import utcnow


class GridType(enum.StrEnum):
    BASIC = "basic"  # 基础网格: the community's own, 属地
    EXCLUSIVE = "exclusive"  # 专属网格: a campus, a park, an enterprise, owned by a unit


class AddressLevel(enum.StrEnum):
    """GA/T 2000.32 element types of the most specific part of an address."""

    DOOR = "door"  # 41 街路巷 + 门牌号
    COMPOUND = "compound"  # 42 小区 / 43 院
    BUILDING = "building"  # 50 建筑物 (楼栋)
    UNIT = "unit"  # 61 单元
    ROOM = "room"  # 62 室


class BuildingUse(enum.StrEnum):
    RESIDENTIAL = "residential"
    COMMERCIAL = "commercial"
    INDUSTRIAL = "industrial"
    PUBLIC = "public"
    MIXED = "mixed"
    OTHER = "other"


class _Versioned:
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Area(_Versioned, Base):
    """The boundary of one area org node: the district, a town/street, a community/village or
    a standard grid (标准作业网格). The org tree holds the hierarchy and the code."""

    __tablename__ = "base_area"

    org_id: Mapped[int] = mapped_column(ForeignKey("org_node.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    geometry: Mapped[bytes] = mapped_column(LargeBinary)
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    label_lon: Mapped[float] = mapped_column(Float)
    label_lat: Mapped[float] = mapped_column(Float)
    area_m2: Mapped[float] = mapped_column(Float)
    #: Grids only: basic (the community's) or exclusive (a unit's).
    grid_type: Mapped[str | None] = mapped_column(String(16))
    #: Grids only: who answers for it; a grid with no other owner falls to its community.
    responsible_org_id: Mapped[int | None] = mapped_column(ForeignKey("org_node.id"))


class Road(_Versioned, Base):
    """A road, street or lane (街路巷, element type 41)."""

    __tablename__ = "base_road"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    #: Former names and common variants, for address matching.
    aliases: Mapped[list[str]] = mapped_column(JSONText, default=list)
    town_id: Mapped[int | None] = mapped_column(ForeignKey("org_node.id"), index=True)
    geometry: Mapped[bytes] = mapped_column(LargeBinary)


class Building(_Versioned, Base):
    """A standard building (标准建筑物). Its addresses (the door plate it stands at, its
    building-level address) point to it through ``Address.building_id``."""

    __tablename__ = "base_building"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    use: Mapped[str] = mapped_column(String(16))
    floors: Mapped[int] = mapped_column(Integer)
    footprint: Mapped[bytes | None] = mapped_column(LargeBinary)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    h3: Mapped[int] = mapped_column(BigInteger, index=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("org_node.id"), index=True)


class Address(_Versioned, Base):
    """A standard address (标准地址): a door plate on a road, or a building, unit or room
    under one. ``code`` is stable: given when the address is made and never reused."""

    __tablename__ = "base_address"
    __table_args__ = (Index("ix_base_address_road_number", "road_id", "house_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    level: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("base_address.id"), index=True)
    road_id: Mapped[int | None] = mapped_column(ForeignKey("base_road.id"))
    house_number: Mapped[str | None] = mapped_column(String(16))  # 门牌号 "12", "12-1"
    compound: Mapped[str | None] = mapped_column(String(64))  # 小区/院
    building_no: Mapped[str | None] = mapped_column(String(16))  # 栋/幢
    unit_no: Mapped[str | None] = mapped_column(String(16))  # 单元
    room_no: Mapped[str | None] = mapped_column(String(16))  # 室
    #: The full standard form, from the district down ("溧水区永阳街道秦淮社区中山路12号").
    full_name: Mapped[str] = mapped_column(String(256))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    h3: Mapped[int] = mapped_column(BigInteger, index=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("org_node.id"), index=True)
    building_id: Mapped[int | None] = mapped_column(ForeignKey("base_building.id"))


class Revision(Base):
    """A counter per kind of base data, raised in the same transaction as every change: the
    cheap stamp that caches in every process (locator, matcher, map tiles) compare."""

    __tablename__ = "base_revision"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    rev: Mapped[int] = mapped_column(Integer, default=0)


class PersonKind(enum.StrEnum):
    REGISTERED = "registered"  # 户籍人口
    FLOATING = "floating"  # 流动人口
    FOREIGN = "foreign"  # 境外人员


class UnitKind(enum.StrEnum):
    ENTERPRISE = "enterprise"  # 企业
    ORGAN = "organ"  # 机关
    INSTITUTION = "institution"  # 事业单位
    ASSOCIATION = "association"  # 社会团体
    PRIVATE_NONPROFIT = "private_nonprofit"  # 民办非企业单位


class Person(_Versioned, Base):
    """实有人口. Name, ID number and phone are stored SM4-encrypted; a keyed SM3 hash of the
    ID number finds a person exactly; the masked forms are kept for lists, so a list never
    decrypts anything."""

    __tablename__ = "base_person"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name_enc: Mapped[str] = mapped_column(String(200))
    name_masked: Mapped[str] = mapped_column(String(40))
    id_enc: Mapped[str] = mapped_column(String(200))
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    id_masked: Mapped[str] = mapped_column(String(24))
    phone_enc: Mapped[str | None] = mapped_column(String(200))
    phone_masked: Mapped[str | None] = mapped_column(String(24))
    gender: Mapped[str] = mapped_column(String(1))  # "M" / "F", from the ID number
    birth_year: Mapped[int] = mapped_column(Integer)
    nationality: Mapped[str] = mapped_column(String(3), default="CHN")
    house_id: Mapped[int | None] = mapped_column(ForeignKey("base_house.id"), index=True)
    address_id: Mapped[int] = mapped_column(ForeignKey("base_address.id"))
    grid_id: Mapped[int] = mapped_column(ForeignKey("org_node.id"), index=True)


class House(_Versioned, Base):
    """实有房屋: a dwelling or premises, a room of a standard building."""

    __tablename__ = "base_house"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("base_building.id"), index=True)
    address_id: Mapped[int] = mapped_column(ForeignKey("base_address.id"))
    unit_no: Mapped[str | None] = mapped_column(String(8))
    floor: Mapped[int] = mapped_column(Integer)
    room_no: Mapped[str] = mapped_column(String(16))
    use: Mapped[str] = mapped_column(String(16))  # residential, commercial, office...
    ownership: Mapped[str] = mapped_column(String(16))  # owned, rented, public, vacant
    area_m2: Mapped[float] = mapped_column(Float)
    grid_id: Mapped[int] = mapped_column(ForeignKey("org_node.id"), index=True)


class Unit(_Versioned, Base):
    """实有单位: enterprises, government organs, institutions, associations, private
    non-profits, each with its GB 32100 unified social credit code."""

    __tablename__ = "base_unit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    industry: Mapped[str | None] = mapped_column(String(64))
    legal_rep_enc: Mapped[str | None] = mapped_column(String(200))
    legal_rep_masked: Mapped[str | None] = mapped_column(String(40))
    phone_masked: Mapped[str | None] = mapped_column(String(24))
    employees: Mapped[int | None] = mapped_column(Integer)
    address_id: Mapped[int] = mapped_column(ForeignKey("base_address.id"))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    h3: Mapped[int] = mapped_column(BigInteger, index=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("org_node.id"), index=True)


class Facility(_Versioned, Base):
    """实有设施: hydrants, manholes, street lamps, cameras, shelters and the like."""

    __tablename__ = "base_facility"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(24), index=True)
    name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="normal")
    owner_org_id: Mapped[int | None] = mapped_column(ForeignKey("org_node.id"))
    address_id: Mapped[int | None] = mapped_column(ForeignKey("base_address.id"))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    h3: Mapped[int] = mapped_column(BigInteger, index=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("org_node.id"), index=True)


class Change(Base):
    """One applied change of a base record: who, when, the old and the new values of the
    fields that changed. The full history of every record, and its state as of any date."""

    __tablename__ = "base_change"
    __table_args__ = (Index("ix_base_change_record", "record_type", "record_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_type: Mapped[str] = mapped_column(String(16))
    record_id: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)  # the record's version after the change
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    changed_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    changed_by_name: Mapped[str] = mapped_column(String(64))
    old: Mapped[dict[str, object]] = mapped_column(JSONText)
    new: Mapped[dict[str, object]] = mapped_column(JSONText)
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("base_proposal.id"))


class Proposal(Base):
    """A change proposed in the field (by a grid worker), waiting for the grid's community."""

    __tablename__ = "base_proposal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_type: Mapped[str] = mapped_column(String(16))
    record_id: Mapped[int] = mapped_column(Integer)
    base_version: Mapped[int] = mapped_column(Integer)
    changes: Mapped[dict[str, object]] = mapped_column(JSONText)
    reason: Mapped[str] = mapped_column(String(500), default="")
    grid_id: Mapped[int] = mapped_column(ForeignKey("org_node.id"), index=True)
    proposed_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    proposed_by_name: Mapped[str] = mapped_column(String(64))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    #: pending, applied, rejected, conflict
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str] = mapped_column(String(500), default="")


class PatrolTask(Base):
    """A patrol of one grid (巡查任务) for its grid worker, with a due date."""

    __tablename__ = "base_patrol_task"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("org_node.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    assigned_to: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: open, done
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CheckIn(Base):
    """A grid worker's check-in: where and when, and whether that was inside the grid."""

    __tablename__ = "base_checkin"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("base_patrol_task.id"), index=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("org_node.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    h3: Mapped[int] = mapped_column(BigInteger, index=True)
    inside_grid: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(String(500), default="")
