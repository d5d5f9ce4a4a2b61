"""Locked cells outside the exercises that use the student's answers (a demo, a training run, an
explorer): before those answers exist, they must not fail, and cells further down must still run.

- :func:`demo` wraps a cell that only shows something: an answer not written yet stops it with a
  one-line note on stdout naming the exercise, instead of an error;
- :func:`yours_or` wraps an answer that later cells depend on (the shuffled images a training run
  and an explorer use): until it is written, coursekit's own version stands in for it, and a note
  says so.

Either way the note goes to stdout: nbgrader scores stderr as an error.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable, Iterator

from coursekit.grading.checks import unanswered


@contextlib.contextmanager
def demo(what: str = "this cell") -> Iterator[None]:
    """Run a demo; if an answer it uses is still a stub, print which one and skip the rest of the cell."""
    try:
        yield
    except NotImplementedError as err:
        if (exercise := unanswered(err)) is None:
            raise
        print(f"{what} uses your answer to {exercise}, which is not answered yet: answer it, then run this cell again")


def yours_or(answer: Callable, stand_in: Callable, what: str) -> Callable:
    """``answer`` as it is, or, while its stub (or the stub of an answer it calls) is in place,
    ``stand_in`` with a note saying that ``what`` uses coursekit's version for now (once: a training
    loop may call it a thousand times)."""
    noted = False

    @functools.wraps(answer)
    def call(*args, **kwargs):
        nonlocal noted
        try:
            return answer(*args, **kwargs)
        except NotImplementedError as err:
            if (exercise := unanswered(err)) is None:
                raise
            if not noted:
                print(f"{exercise} is not answered yet: {what} uses coursekit's version until it is")
                noted = True
            return stand_in(*args, **kwargs)

    return call
