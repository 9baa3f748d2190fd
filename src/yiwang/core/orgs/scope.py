"""Data scope: which part of the org tree a user may see. Every list applies it in the
service layer (never in templates)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Select, and_, false, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute

from yiwang.core.orgs.models import OrgNode

SelectT = TypeVar("SelectT")


def subtree_condition(path: str, column: Any = OrgNode.path) -> ColumnElement[bool]:
    """``column`` lies at or under the node whose path is ``path``: one index range scan.

    Paths end in "/", and "0" is the character after "/", so [path, path[:-1] + "0") holds
    exactly the strings that start with ``path``.
    """
    return and_(column >= path, column < path[:-1] + "0")


@dataclass(frozen=True)
class DataScope:
    """Either everything, or the subtrees under a set of org paths."""

    everything: bool = False
    paths: tuple[str, ...] = ()

    @classmethod
    def all(cls) -> DataScope:
        return cls(everything=True)

    @classmethod
    def subtree(cls, *paths: str) -> DataScope:
        return cls(paths=tuple(sorted(set(paths))))

    def org_condition(self) -> ColumnElement[bool]:
        """A condition on ``OrgNode`` rows."""
        if self.everything:
            return true()
        if not self.paths:
            return false()
        return or_(*(subtree_condition(p) for p in self.paths))

    def org_ids(self) -> Select[Any]:
        return select(OrgNode.id).where(self.org_condition())

    def condition(self, org_id_column: InstrumentedAttribute[Any]) -> ColumnElement[bool]:
        """Rows that belong to an org node in scope through ``org_id_column`` (for a
        ``where`` that combines it with other conditions)."""
        if self.everything:
            return true()
        return org_id_column.in_(self.org_ids())

    def apply(self, stmt: SelectT, org_id_column: InstrumentedAttribute[Any]) -> SelectT:
        """Filter a query whose rows belong to an org node through ``org_id_column``."""
        if self.everything:
            return stmt
        return cast(SelectT, cast(Any, stmt).where(self.condition(org_id_column)))

    def sees_path(self, path: str) -> bool:
        """The node is in scope or above it: a grid worker sees the outline and name of their
        own community and town (for orientation), never a neighbour's."""
        return self.covers_path(path) or any(p.startswith(path) for p in self.paths)

    def covers_path(self, path: str) -> bool:
        return self.everything or any(path.startswith(p) for p in self.paths)
