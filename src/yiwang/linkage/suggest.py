"""What intake suggests with: the categories' keyword rules and the newest trained model,
cached per process and reloaded when the tables change; and the training job.

Training uses the cases staff filed (their category was confirmed or corrected by a person),
oldest first; the newest fifth is held out to measure the model, and the keyword rules are
measured on the same cases, so the accuracy printed is the one intake will see.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.jobs.runner import JobContext
from yiwang.linkage.classify import Classifier, KeywordRules, LinearModel, features
from yiwang.linkage.models import Case, Category, ClassifierModel
from yiwang.linkage.status import ACCEPTED, MERGED, REJECTED

log = logging.getLogger("yiwang.linkage")

#: fewer confirmed cases than this: keyword rules only
MIN_SAMPLES = 200
#: at most this many of the newest confirmed cases are used
MAX_SAMPLES = 200_000


@dataclass(frozen=True)
class Book:
    stamp: tuple[int, int, int]
    ids: dict[str, int]
    codes: dict[int, str]
    rules: KeywordRules


_book: Book | None = None
_classifier: tuple[int | None, Book, Classifier] | None = None


async def get_book(session: AsyncSession) -> Book:
    global _book
    stamp = tuple(
        int(v or 0)
        for v in (
            await session.execute(
                select(func.count(), func.max(Category.id), func.sum(Category.version))
            )
        ).one()
    )
    if _book is None or _book.stamp != stamp:
        rows = (await session.execute(select(Category).where(Category.active))).scalars().all()
        _book = Book(
            (stamp[0], stamp[1], stamp[2]),
            {c.code: c.id for c in rows},
            {c.id: c.code for c in rows},
            KeywordRules((c.code, c.keywords) for c in rows),
        )
    return _book


async def get_classifier(session: AsyncSession, book: Book) -> Classifier:
    global _classifier
    newest = (await session.execute(select(func.max(ClassifierModel.id)))).scalar_one()
    if _classifier is None or _classifier[0] != newest or _classifier[1] is not book:
        model = None
        if newest is not None:
            blob = (
                await session.execute(
                    select(ClassifierModel.blob).where(ClassifierModel.id == newest)
                )
            ).scalar_one()
            model = LinearModel.from_bytes(blob)
            # a category since deactivated is never suggested
            if any(c not in book.ids for c in model.classes):
                model = None
        _classifier = (newest, book, Classifier(book.rules, model))
    return _classifier[2]


def forget() -> None:
    global _book, _classifier
    _book = _classifier = None


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
