"""Typed results of data validation, shared by the validator and the dataset builder."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.data.examples import DataFormat

DEFAULT_MAX_PROBLEMS = 100


@dataclass(frozen=True)
class Problem:
    """One problem in a data file; ``line`` is 1-based, 0 means the file as a whole."""

    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


@dataclass
class ValidationReport:
    """What validation found: at most ``max_problems`` problems are kept, all are counted."""

    num_examples: int = 0
    format: DataFormat | None = None
    problems: list[Problem] = field(default_factory=list)
    num_problems: int = 0
    max_problems: int = DEFAULT_MAX_PROBLEMS

    @property
    def ok(self) -> bool:
        return self.num_problems == 0

    @property
    def truncated(self) -> bool:
        """True when more problems were found than kept."""
        return self.num_problems > len(self.problems)

    def add(self, line: int, field: str | None, message: str) -> None:
        self.num_problems += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(Problem(line, field, message))

    def add_many(self, lines: range, field: str | None, message: str) -> None:
        """Record the same problem on each line of ``lines`` without looping past the cap."""
        room = max(self.max_problems - len(self.problems), 0)
        self.problems.extend(Problem(line, field, message) for line in lines[:room])
        self.num_problems += len(lines)

    def summary(self) -> str:
        """A human-readable multi-line summary, as raised in :class:`DataValidationError`."""
        if self.ok:
            return f"{self.num_examples} valid examples ({self.format})"
        lines = [f"{self.num_problems} problem(s) in the data file:"]
        lines += [f"  {p}" for p in self.problems]
        if self.truncated:
            lines.append(f"  ... and {self.num_problems - len(self.problems)} more")
        return "\n".join(lines)


class DataValidationError(ValueError):
    """Raised when a data file (or a tokenised dataset) does not pass validation; carries the report."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report
