"""Counting the Python lines an answer runs: a measure of vectorisation that is the same on every machine."""

from __future__ import annotations

import os


def python_lines(fn, *args, **kwargs) -> tuple[object, int]:
    """Call ``fn`` and count the Python lines it executed in the student's own code.

    Lines run inside installed packages (numpy, scipy, coursekit...) and the standard library are not
    counted, so the count measures the student's Python loops, not the work numpy does. A loop over
    pixels runs thousands of lines on a small image, a vectorised answer a few dozen: unlike a
    timing, the count is the same on every machine. Returns ``(result, lines)``; an answer that
    removes the trace function fails the check.
    """
    import sys
    import sysconfig

    import site

    import numpy

    folders = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    folders |= set(site.getsitepackages()) | {site.getusersitepackages()}
    folders |= {os.path.dirname(os.path.dirname(os.path.abspath(numpy.__file__))),  # wherever numpy lives
                os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}  # coursekit itself
    skip = tuple(sorted(folders))
    counted = {}
    lines = 0

    def tracer(frame, event, arg):
        nonlocal lines
        code = frame.f_code
        own = counted.get(code)
        if own is None:
            own = counted[code] = not code.co_filename.startswith(skip)
        if not own:
            return None  # do not trace inside library calls
        if event == "line":
            lines += 1
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        result = fn(*args, **kwargs)
    finally:
        still = sys.gettrace() is tracer
        sys.settrace(previous)
    if not still:  # the answer switched the count off (sys.settrace(None)): it cannot be trusted
        from coursekit.grading.checks import CheckFailed

        raise CheckFailed("your code switched off the count of the Python lines it runs (sys.settrace): the "
                          "vectorisation check cannot be made, and this is recorded for your instructor")
    return result, lines
