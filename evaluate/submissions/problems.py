"""The vocabulary of submission errors: a :class:`Problem` names the file, row and field; a
:class:`SubmissionError` carries all problems found; user content is quoted only as short escaped excerpts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_LISTED = 20


def excerpt(value: object, n: int = 40) -> str:
    """A short, escaped quotation of user content for an error message."""
    text = str(value)
    return repr(text[:n] + ("…" if len(text) > n else ""))


@dataclass(frozen=True)
class Problem:
    file: str
    row: int | None  # 1-based data row (after the header), None for file-level problems
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}" + (f", row {self.row}" if self.row is not None else "")
        return f"{where}, field {self.field!r}: {self.message}"


class SubmissionError(ValueError):
    """A submission failed validation; ``problems`` lists the problems found (the first of each kind per file,
    with counts for the rest)."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__(f"invalid submission: {shown}{more}")

    def report(self) -> str:
        """One line per problem (each kind is already capped at its first rows and a count)."""
        limit = 5 * MAX_LISTED
        lines = [str(p) for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more problem(s)")
        return "\n".join(lines)


def add_rows(problems: list[Problem], file: str, rows: np.ndarray, field: str, message) -> None:
    """Problems for the rows ``rows`` (0-based): the first few one by one (``message(row)``), then a count."""
    for r in rows[:MAX_LISTED]:
        problems.append(Problem(file, int(r) + 1, field, message(int(r))))
    if len(rows) > MAX_LISTED:
        problems.append(Problem(file, None, field, f"... and {len(rows) - MAX_LISTED} more row(s) like these"))
