"""Domain errors. Services raise them; the web layer maps them to RFC 9457 problem+json.

Each error carries a stable ``code`` (for programs), an HTTP ``status`` (for the web layer),
a ``message`` in English that is also the message-catalogue key (translated for people) and,
where it applies, the offending ``field`` or ``row``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400
    message: ClassVar[str] = "The request cannot be carried out."

    def __init__(
        self,
        message: str | None = None,
        *,
        field: str | None = None,
        row: int | None = None,
        params: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = message or self.message
        self.field = field
        self.row = row
        self.params = params or {}
        self.extra = extra or {}
        super().__init__(self.detail)


class NotFound(DomainError):
    code = "not_found"
    status = 404
    message = "The requested object does not exist."


class ValidationFailed(DomainError):
    code = "validation_failed"
    status = 422
    message = "The input is not valid."


class Conflict(DomainError):
    code = "conflict"
    status = 409
    message = "The object already exists or was changed by someone else."


class NotAuthenticated(DomainError):
    code = "not_authenticated"
    status = 401
    message = "Please sign in."


class PermissionDenied(DomainError):
    code = "permission_denied"
    status = 403
    message = "You do not have permission to do this."


class OutOfScope(PermissionDenied):
    code = "out_of_scope"
    message = "This object is outside your data scope."


class RateLimited(DomainError):
    code = "rate_limited"
    status = 429
    message = "Too many requests; try again later."


class InvalidRows(ValidationFailed):
    """A batch (an upload, a bulk call) with rows that cannot be taken; nothing was written.

    ``problems`` lists every problem found (up to a limit), each with its 1-based row (or
    feature) number, the field and the reason, so that the sender can fix them all at once.
    """

    code = "invalid_rows"
    message = "Some rows are not valid; nothing was saved."
    MAX_LISTED = 200

    def __init__(self, problems: list[RowProblem]) -> None:
        listed = problems[: self.MAX_LISTED]
        first = listed[0] if listed else None
        super().__init__(
            field=first.field if first else None,
            row=first.row if first else None,
            extra={
                "errors": [p.as_dict() for p in listed],
                "error_count": len(problems),
            },
        )
        self.problems = problems


class RowProblem:
    """One problem in one row of a batch: ``message`` is an English message-catalogue key
    with ``{placeholders}`` filled from ``params`` (the web layer translates it)."""

    __slots__ = ("field", "message", "params", "row")

    def __init__(
        self, row: int, field: str | None, message: str, params: dict[str, Any] | None = None
    ) -> None:
        self.row, self.field, self.message = row, field, message
        self.params = params or {}

    @property
    def text(self) -> str:
        """The message in English, with its parameters filled in."""
        return self.message.format(**self.params) if self.params else self.message

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.text}

    def __repr__(self) -> str:
        return f"RowProblem(row={self.row}, field={self.field!r}, message={self.text!r})"


class BadParameter(ValidationFailed):
    """A query parameter that standards answer with 400 (OGC API - Features)."""

    code = "invalid_parameter"
    status = 400
    message = "A query parameter is not valid."
