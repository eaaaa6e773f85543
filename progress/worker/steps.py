"""Reporting from helpers: named steps of a job (stages), a tqdm-like bar. Worker processes.

A job split into steps reads "Step 2 of 3: Uploading" and its bar moves through
each step's share of the whole: progress reported inside a step (set_progress,
track, a bar, or steps nested in it) fills that share only. Outside a launched
job all of this does nothing, so helpers can report unconditionally.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import TracebackType

from progress.worker.calls import set_progress
from progress.worker.reporter import JobReporter, current_reporter

# What stands between a step's label and what is reported inside it.
SEPARATOR = " — "
# A job in steps reports percent of the whole: its total.
WHOLE = 100.0


class Step:
    """One running step of a stages() block, holding what is reported inside it.

    It has the attributes a job's state has for progress (current, total,
    message), so the reporter writes to it exactly as it writes to the job.
    """

    __slots__ = ("current", "label", "message", "parent", "share", "start", "total")

    def __init__(self, parent: Step | None, label: str, start: float, share: float) -> None:
        self.parent = parent
        self.label = label
        self.start = start
        self.share = share
        self.current: float = 0
        self.total: float | None = None
        self.message = ""

    def resolve(self) -> tuple[float, float, str]:
        """The job's (current, total, message) while this is the innermost step.

        The job's numbers are percent of the whole (total 100): a step's own
        units mean nothing beside another's. Its counts go in the message.
        """
        current: float = self.current
        total = self.total
        counts = _counts(current, total)
        message = (
            f"{self.message} ({counts})" if self.message and counts else self.message or counts
        )
        step: Step | None = self
        while step is not None:
            done = min(1.0, max(0.0, float(current) / total)) if total else 0.0
            current = round(step.start + step.share * done, 2)
            total = WHOLE
            message = f"{step.label}{SEPARATOR}{message}" if message else step.label
            step = step.parent
        return current, WHOLE, message


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _counts(current: float, total: float | None) -> str:
    """A step's own counts, as the message shows them: "7 / 150", or "7" with no total."""
    if total:
        return f"{_number(current)} / {_number(total)}"
    return _number(current) if current else ""


class Stages:
    """The steps of a job or of one of its steps; see stages()."""

    def __init__(self, names: Sequence[str], weights: Sequence[float] | None = None) -> None:
        if not names:
            raise ValueError("stages() needs at least one step name.")
        if weights is None:
            weights = [1.0] * len(names)
        if len(weights) != len(names):
            raise ValueError("stages() needs as many weights as step names.")
        if any(isinstance(w, bool) or not isinstance(w, int | float) or w <= 0 for w in weights):
            raise ValueError("Step weights must be numbers > 0.")
        self.names = [str(name) for name in names]
        self.weights = [float(weight) for weight in weights]
        self.index = -1
        self._reporter: JobReporter | None = None
        self._parent: Step | None = None
        self._step: Step | None = None

    def __enter__(self) -> Stages:
        """Runs when the with-block starts: the steps belong to the job's innermost level."""
        self._reporter = current_reporter()
        if self._reporter is not None:
            self._parent = self._reporter.scope
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Runs when the with-block ends: the level above takes over, this block counted done."""
        reporter = self._reporter
        if reporter is None or self._step is None:
            return
        last, self._step = self._step, None
        reporter.scope = self._parent
        if exc_type is not None:
            return
        # What the steps were to the level above: all of it done.
        target = reporter.state if self._parent is None else self._parent
        target.current = WHOLE
        target.total = WHOLE
        if self._parent is not None:
            self._parent.message = ""
        else:
            # The words of the last step as it ended, not of the last state a throttle window
            # let out: a job that ends now must not say "(19 / 20)" at 100%.
            target.message = last.resolve()[2]
        reporter.changed()

    def next(self, name: str | None = None) -> str:
        """Ends the current step and starts the next one; returns its name.

        `name` replaces the next step's name, for steps named once known.
        """
        if self.index + 1 >= len(self.names):
            raise ValueError(f"All {len(self.names)} steps have already started.")
        self.index += 1
        if name is not None:
            self.names[self.index] = str(name)
        reporter = self._reporter
        if reporter is not None:
            label = f"Step {self.index + 1} of {len(self.names)}: {self.names[self.index]}"
            unit = WHOLE / sum(self.weights)
            start = unit * sum(self.weights[: self.index])
            self._step = Step(self._parent, label, start, unit * self.weights[self.index])
            reporter.scope = self._step
            reporter.changed()
        return self.names[self.index]

    def __iter__(self) -> Iterator[str]:
        """Runs each step in turn: `for name in stages("Fetch", "Render"): ...`."""
        with self:
            while self.index + 1 < len(self.names):
                yield self.next()


def stages(*names: str, weights: Sequence[float] | None = None) -> Stages:
    """Splits the running job (or the current step) into named steps.

    `for name in stages("Download", "Parse"):` runs a step per loop;
    `with stages(...) as steps:` lets code call `steps.next()` where each step
    begins. `weights` gives each step's share of the bar (default: equal).
    """
    return Stages(names, weights)


class Bar:
    """A tqdm-like counter for helpers: `with bar(total=n) as b: ... b.update()`."""

    def __init__(self, total: float | None = None, message: str | None = None) -> None:
        self.n: float = 0
        self.total = total
        self.message = message
        set_progress(0, total, message)

    def update(self, n: float = 1) -> None:
        """Counts `n` more units done, as tqdm's update() does."""
        self.n += n
        set_progress(self.n, self.total, self.message)

    def set(self, current: float, message: str | None = None) -> None:
        """Sets the count outright, and the message when given."""
        self.n = current
        if message is not None:
            self.message = message
        set_progress(current, self.total, message)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Nothing to release: the job's state outlives the bar."""


def bar(total: float | None = None, message: str | None = None) -> Bar:
    """A counter that reports each update as progress of the running job (or step)."""
    return Bar(total, message)
