"""Suggesting a case's category from its text.

Words come from jieba's segmentation (rjieba, its Rust port); each text becomes hashed word
and word-pair features, and a multinomial logistic regression (a linear model, trained with
AdaGrad on mini-batches in numpy) scores the categories. It is trained on the cases staff
have already filed, whose category a person confirmed or corrected, so every correction
becomes training data. Until enough cases exist, keyword rules (each category's
``keywords``) are the cold-start fallback.
"""

from __future__ import annotations

import io
import itertools
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DIM = 1 << 16
_SKIP = re.compile(r"^[\s\W\d_]+$")
_lock = threading.Lock()
_cutter: Callable[[str], list[str]] | None = None


def _cut() -> Callable[[str], list[str]]:
    """jieba's segmentation: rjieba, bindings of jieba-rs, the Rust port of jieba with its
    dictionary and its HMM for unknown words. On Chinese text it gives the same words as
    jieba's ``lcut``, about twenty times faster; it keeps Latin and number runs with ``-``,
    ``.`` or ``_`` whole ("UTF-8", "12-1") where jieba split them. Importing it loads the
    dictionary (once per process; the warmer does it at start)."""
    global _cutter
    if _cutter is None:
        with _lock:
            if _cutter is None:
                import rjieba

                _cutter = rjieba.cut
    return _cutter


def words(text: str) -> list[str]:
    """The text's words, without punctuation, spaces and bare numbers."""
    try:
        cut = _cut()(text)
    except UnicodeEncodeError:  # a lone surrogate (jieba passed it through)
        cut = _cut()(text.encode("utf-8", "replace").decode("utf-8"))
    return [w for w in cut if not _SKIP.match(w)]


def _hash(feature: str) -> int:
    return zlib.crc32(feature.encode("utf-8")) & (DIM - 1)


def features(text: str) -> npt.NDArray[np.int64]:
    """Hashed features of a text: its words and its adjacent word pairs (each once)."""
    ws = words(text)
    feats = {_hash(w) for w in ws}
    feats.update(_hash(f"{a}|{b}") for a, b in itertools.pairwise(ws))
    return np.fromiter(sorted(feats), dtype=np.int64, count=len(feats))


@dataclass(frozen=True)
class Suggestion:
    code: str
    confidence: float
    #: "model" or "keywords"
    source: str


class LinearModel:
    """Softmax regression over hashed features."""

    def __init__(
        self,
        classes: Sequence[str],
        weights: npt.NDArray[np.float32] | None = None,
        bias: npt.NDArray[np.float32] | None = None,
    ) -> None:
        self.classes = list(classes)
        n = len(self.classes)
        self.weights = weights if weights is not None else np.zeros((DIM, n), np.float32)
        self.bias = bias if bias is not None else np.zeros(n, np.float32)

    def _scores(self, rows: Sequence[npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        out = np.empty((len(rows), len(self.classes)), np.float32)
        for i, idx in enumerate(rows):
            out[i] = self.weights[idx].sum(axis=0) + self.bias
        return out

    @staticmethod
    def _softmax(scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        z = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]

    def predict(self, rows: Sequence[npt.NDArray[np.int64]]) -> list[tuple[str, float]]:
        if not rows:
            return []
        p = self._softmax(self._scores(rows))
        best = p.argmax(axis=1)
        return [(self.classes[b], float(p[i, b])) for i, b in enumerate(best)]

    @classmethod
    def fit(
        cls,
        rows: Sequence[npt.NDArray[np.int64]],
        labels: Sequence[str],
        *,
        epochs: int = 6,
        batch: int = 64,
        rate: float = 0.5,
        seed: int = 7,
    ) -> LinearModel:
        classes = sorted(set(labels))
        model = cls(classes)
        index = {c: i for i, c in enumerate(classes)}
        y = np.asarray([index[label] for label in labels], dtype=np.int64)
        g2w = np.full((DIM, len(classes)), 1e-8, np.float32)  # AdaGrad accumulators
        g2b = np.full(len(classes), 1e-8, np.float32)
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            order = rng.permutation(len(rows))
            for start in range(0, len(order), batch):
                chunk = order[start : start + batch]
                batch_rows = [rows[i] for i in chunk]
                p = cls._softmax(model._scores(batch_rows))
                p[np.arange(len(chunk)), y[chunk]] -= 1.0  # gradient of the log loss
                p /= len(chunk)
                lengths = np.fromiter((len(r) for r in batch_rows), np.int64, len(batch_rows))
                idx = np.concatenate(batch_rows) if batch_rows else np.empty(0, np.int64)
                grad_rows = np.repeat(p, lengths, axis=0)
                uniq, inverse = np.unique(idx, return_inverse=True)
                grad = np.zeros((len(uniq), len(classes)), np.float32)
                np.add.at(grad, inverse, grad_rows)
                g2w[uniq] += grad * grad
                model.weights[uniq] -= rate * grad / np.sqrt(g2w[uniq])
                gb = p.sum(axis=0)
                g2b += gb * gb
                model.bias -= rate * gb / np.sqrt(g2b)
        return model

    def to_bytes(self) -> bytes:
        used = np.flatnonzero(np.any(self.weights != 0, axis=1))
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            classes=np.asarray(self.classes),
            rows=used,
            weights=self.weights[used],
            bias=self.bias,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LinearModel:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            classes = [str(c) for c in z["classes"]]
            weights = np.zeros((DIM, len(classes)), np.float32)
            weights[z["rows"]] = z["weights"]
            return cls(classes, weights, z["bias"].astype(np.float32))


class KeywordRules:
    """The cold-start fallback: the category whose keywords the text holds most (longer
    keywords count more; the most specific category wins a tie)."""

    def __init__(self, keywords: Iterable[tuple[str, Sequence[str]]]) -> None:
        self.rules = [(code, [k for k in kws if k]) for code, kws in keywords if kws]

    def suggest(self, text: str) -> Suggestion | None:
        best: tuple[float, int, str] | None = None
        for code, kws in self.rules:
            score = float(sum(len(k) for k in kws if k in text))
            if score and (best is None or (score, len(code)) > best[:2]):
                best = (score, len(code), code)
        if best is None:
            return None
        return Suggestion(best[2], min(0.9, 0.3 + 0.1 * best[0]), "keywords")


class Classifier:
    """The model when there is one and it is confident enough, else the keyword rules."""

    #: below this probability the keyword rules are asked as well
    MIN_CONFIDENCE = 0.35

    def __init__(self, rules: KeywordRules, model: LinearModel | None = None) -> None:
        self.rules, self.model = rules, model

    def suggest(self, text: str) -> Suggestion | None:
        if self.model is not None:
            ((code, p),) = self.model.predict([features(text)])
            if p >= self.MIN_CONFIDENCE:
                return Suggestion(code, p, "model")
            fallback = self.rules.suggest(text)
            return fallback or Suggestion(code, p, "model")
        return self.rules.suggest(text)


def accuracy(model: LinearModel, texts: Sequence[str], labels: Sequence[str]) -> float:
    if not texts:
        return 0.0
    predicted = model.predict([features(t) for t in texts])
    return sum(p == y for (p, _), y in zip(predicted, labels, strict=True)) / len(texts)
