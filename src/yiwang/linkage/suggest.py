"""What intake suggests with: the categories' keyword rules and the newest trained model,
cached per process and reloaded when the tables change; and the training job.

Training uses the cases staff filed (their category was confirmed or corrected by a person),
oldest first; the newest fifth is held out to measure the model, and the keyword rules are
measured on the same cases, so the accuracy printed is the one intake will see.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.cache import StampedCopy
from yiwang.core.jobs.runner import JobContext
from yiwang.core.orgs.models import OrgKind, OrgNode
from yiwang.linkage.categories import Route, Terms, route_of, terms_of
from yiwang.linkage.classify import Classifier, KeywordRules, LinearModel, features
from yiwang.linkage.models import Case, Category, ClassifierModel, Responsibility
from yiwang.linkage.status import ACCEPTED, MERGED, REJECTED

log = logging.getLogger("yiwang.linkage")

#: fewer confirmed cases than this: keyword rules only
MIN_SAMPLES = 200
#: at most this many of the newest confirmed cases are used
MAX_SAMPLES = 200_000


#: another process's change to the categories, the matrix or the model is seen this late
RECHECK_SECONDS = 1.0


@dataclass(frozen=True)
class CategoryInfo:
    id: int
    code: str
    parent_id: int | None
    urgency: str | None
    limit_amount: int | None
    limit_unit: str | None
    urgent_hours: int | None
    active: bool


@dataclass(frozen=True)
class Entry:
    category_id: int
    area_id: int | None
    lead_id: int
    assisting: list[int]


@dataclass(frozen=True)
class Book:
    """What intake needs to classify and route, in memory: the categories (all, by id and
    by code; ``ids`` and ``codes`` the active ones), the responsibility matrix, the district
    and the classifier (the newest model, else keyword rules)."""

    stamp: tuple[int, ...]
    ids: dict[str, int]
    codes: dict[int, str]
    rules: KeywordRules
    categories: dict[int, CategoryInfo]
    by_code: dict[str, CategoryInfo]
    matrix: dict[int, list[Entry]]
    district_id: int | None
    classifier: Classifier
    model_id: int | None

    def chain(self, category_id: int) -> list[CategoryInfo]:
        """The category and its ancestors, nearest first."""
        out: list[CategoryInfo] = []
        current = self.categories.get(category_id)
        while current is not None and len(out) < 10:
            out.append(current)
            current = self.categories.get(current.parent_id) if current.parent_id else None
        return out

    def terms(self, category_id: int) -> Terms:
        return terms_of(self.chain(category_id))

    def route(self, category_id: int, town_id: int | None) -> Route:
        chain = self.chain(category_id)
        rows = [e for c in chain for e in self.matrix.get(c.id, ())]
        return route_of(chain, rows, town_id, self.district_id or 0)


_STAMP = select(
    select(func.count()).select_from(Category).scalar_subquery(),
    select(func.max(Category.id)).scalar_subquery(),
    select(func.sum(Category.version)).scalar_subquery(),
    select(func.count()).select_from(Responsibility).scalar_subquery(),
    select(func.max(Responsibility.id)).scalar_subquery(),
    select(func.sum(Responsibility.version)).scalar_subquery(),
    select(func.max(ClassifierModel.id)).scalar_subquery(),
    select(func.min(OrgNode.id)).where(OrgNode.kind == OrgKind.DISTRICT.value).scalar_subquery(),
)


async def _book_stamp(session: AsyncSession) -> tuple[int, ...]:
    return tuple(int(v or 0) for v in (await session.execute(_STAMP)).one())


async def get_book(session: AsyncSession) -> Book:
    """This process's copy, checked against the tables at most every ``RECHECK_SECONDS``
    (and dropped at once when this process changes them)."""
    return await _copy.get(session)


async def _load(session: AsyncSession, stamp: tuple[int, ...]) -> Book:
    rows = (await session.execute(select(Category))).scalars().all()
    infos = {
        c.id: CategoryInfo(
            c.id, c.code, c.parent_id, c.urgency, c.limit_amount, c.limit_unit,
            c.urgent_hours, bool(c.active),
        )
        for c in rows
    }  # fmt: skip
    active = [c for c in rows if c.active]
    rules = KeywordRules((c.code, c.keywords) for c in active)
    matrix: dict[int, list[Entry]] = {}
    for r in (await session.execute(select(Responsibility))).scalars():
        matrix.setdefault(r.category_id, []).append(
            Entry(r.category_id, r.area_id, r.lead_id, list(r.assisting))
        )
    ids = {c.code: c.id for c in active}
    model_id = stamp[6] or None
    model = None
    if model_id is not None:
        blob = (
            await session.execute(
                select(ClassifierModel.blob).where(ClassifierModel.id == model_id)
            )
        ).scalar_one()
        model = LinearModel.from_bytes(blob)
        # a category since deactivated is never suggested
        if any(c not in ids for c in model.classes):
            model = None
    return Book(
        stamp, ids, {c.id: c.code for c in active}, rules, infos,
        {c.code: c for c in infos.values()}, matrix, stamp[7] or None,
        Classifier(rules, model), model_id,
    )  # fmt: skip


#: (``_load`` is looked up at each load, so that tests can count the loads)
_copy: StampedCopy[Book] = StampedCopy(
    _book_stamp, lambda session, stamp: _load(session, stamp), RECHECK_SECONDS
)


def current() -> Book | None:
    """The copy at hand, however old (to name categories in answers)."""
    return _copy.value


async def get_classifier(session: AsyncSession, book: Book) -> Classifier:
    return book.classifier


def forget() -> None:
    _copy.forget()


def forget_on_commit(session: AsyncSession) -> None:
    """Drop the copy now and again once this session's change is committed (a concurrent
    intake may reload the old tables in between)."""
    forget()
    event.listen(session.sync_session, "after_commit", lambda _s: forget(), once=True)


async def train(session: AsyncSession) -> ClassifierModel | None:
    """Train on the confirmed cases; None when there are too few (or one category only)."""
    book = await get_book(session)
    rows = (
        await session.execute(
            select(Case.title, Case.description, Case.category_id)
            .where(
                Case.category_id.is_not(None),
                Case.status.not_in((ACCEPTED, REJECTED, MERGED)),
            )
            .order_by(Case.reported_at.desc(), Case.id.desc())
            .limit(MAX_SAMPLES)
        )
    ).all()
    samples = [
        (f"{r.title} {r.description}", book.codes[r.category_id])
        for r in reversed(rows)
        if r.category_id in book.codes
    ]
    if len(samples) < MIN_SAMPLES or len({label for _, label in samples}) < 2:
        return None
    cut = len(samples) * 4 // 5
    texts = [t for t, _ in samples]
    labels = [y for _, y in samples]
    feats = [features(t) for t in texts]
    trial = LinearModel.fit(feats[:cut], labels[:cut])
    held_texts, held_labels = texts[cut:], labels[cut:]
    predicted = trial.predict(feats[cut:])
    acc = sum(p == y for (p, _), y in zip(predicted, held_labels, strict=True)) / len(held_labels)
    kw = [book.rules.suggest(t) for t in held_texts]
    kw_acc = sum(s is not None and s.code == y for s, y in zip(kw, held_labels, strict=True)) / len(
        held_labels
    )
    final = LinearModel.fit(feats, labels)
    row = ClassifierModel(
        samples=len(samples),
        held_out=len(held_labels),
        accuracy=acc,
        keyword_accuracy=kw_acc,
        blob=final.to_bytes(),
    )
    session.add(row)
    await session.flush()
    forget_on_commit(session)
    log.info(
        "category model trained on %d cases: held-out accuracy %.3f (keywords %.3f)",
        len(samples),
        acc,
        kw_acc,
    )
    return row


async def train_job(ctx: JobContext) -> None:
    async with ctx.db.session() as session:
        await train(session)
