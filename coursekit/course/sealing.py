"""The sealed autograding run: nbgrader preprocessors configured in nbgrader_config.py, so that plain
``nbgrader autograde`` and Formgrader use them (docs/ANATOMY.md, "Grading integrity").

- :class:`SealSubmission` (sanitizing step) rebuilds each submission from the release: every cell,
  its metadata and order come from the release; only the answer cells' sources come from the
  student, matched by grade id (or, if the student edited the metadata, by cell id). Cells the
  student added are dropped: only the answer cells are graded.
- :class:`SealedExecute` (autograding step, in place of nbgrader's Execute) runs the notebook with
  the kernel-side guards of :mod:`coursekit.grading.seal` around every cell, runs each test cell in
  its own namespace and counts it only if it ran to its end, and isolates faults: a kernel that dies
  or a cell that ignores the interrupt costs the exercise it happens in (its remaining test cells
  score 0); the notebook is re-run in a fresh kernel from the next cell, with that answer replaced by
  the instructor's for the later exercises that call it, so that they are graded on their own.
  ``SealedExecute.answer_timeout``, when set, is an answer cell's own time limit (an answer only
  defines functions and classes): an answer still running then, a top-level loop, is interrupted and
  is such a fault too.
- Both write what they found to ``integrity/<assignment>/<student>/<notebook>.json`` in the course
  directory; ``coursekit audit`` and ``coursekit autograde`` show it, with the static audit of the
  answers (:mod:`coursekit.course.audit`). ``SealedExecute.zero_flagged`` zeroes the exercises whose
  answers were flagged.
"""

from __future__ import annotations

import ast
import json
import secrets
import time
from pathlib import Path
from queue import Empty

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async, run_sync
from nbformat import NotebookNode
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Bool, Integer, Unicode

from coursekit.course import anatomy
from coursekit.grading import seal

REPORTS = "integrity"
MANIFEST = "manifest.json"  # a parallel run's record of what each worker wrote (coursekit.course.grade)


_meta = anatomy.nbgrader_meta


def is_answer(cell) -> bool:
    return bool(_meta(cell).get("solution"))


def kind(cell) -> str:
    """How the sealed run treats a code cell: "answer", "test" or "locked"."""
    meta = _meta(cell)
    if meta.get("solution"):
        return "answer"
    if meta.get("grade"):
        return "test"
    return "locked"


def report_path(config, resources) -> Path:
    coursedir = CourseDirectory(config=config)
    info = resources["nbgrader"]
    return Path(coursedir.root) / REPORTS / info["assignment"] / info["student"] / f"{info['notebook']}.json"


def read_report(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_report(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, sort_keys=True))


def _course_notebook(config, resources, step: str, what: str) -> NotebookNode:
    coursedir = CourseDirectory(config=config)
    info = resources["nbgrader"]
    folder = coursedir.release_directory if step == "release" else coursedir.source_directory
    path = Path(coursedir.format_path(folder, ".", info["assignment"])) / f"{info['notebook']}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(f"the sealed run {what}, and {path} is missing: "
                                f"run `nbgrader generate_assignment {info['assignment']}` first")
    return nbformat.read(path, as_version=4)


def release_notebook(config, resources) -> NotebookNode:
    return _course_notebook(config, resources, "release", "rebuilds submissions from the release")


def source_notebook(config, resources) -> NotebookNode:
    return _course_notebook(config, resources, "source", "stands the instructor's answer in for an answer that faulted")


def rebuild(submitted: NotebookNode, release: NotebookNode) -> tuple[NotebookNode, list[str]]:
    """The release with the student's answer sources in it, and what differed in the submission."""
    findings: list[str] = []
    by_id: dict[str, list] = {}
    by_cell_id: dict[str, object] = {}
    for cell in submitted.cells:
        gid = _meta(cell).get("grade_id")
        if gid:
            by_id.setdefault(gid, []).append(cell)
        if cell.get("id"):
            by_cell_id[cell["id"]] = cell
    release_ids = {_meta(c).get("grade_id") for c in release.cells if _meta(c).get("grade_id")}
    release_cell_ids = {c.get("id") for c in release.cells}
    used = set()
    rebuilt = nbformat.from_dict(release)
    for cell in rebuilt.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if not is_answer(cell):
            continue
        gid = _meta(cell)["grade_id"]
        candidates = by_id.get(gid, [])
        if len(candidates) > 1:
            findings.append(f"{gid}: the submission holds {len(candidates)} cells with this grade id; the first was graded")
        if not candidates and cell.get("id") in by_cell_id:
            candidates = [by_cell_id[cell["id"]]]
            findings.append(f"{gid}: the answer cell's nbgrader metadata was edited; it was matched by its cell id")
        if not candidates:
            findings.append(f"{gid}: the answer cell is missing from the submission; its stub was graded")
            continue
        student = candidates[0]
        if student.cell_type != cell.cell_type:
            findings.append(f"{gid}: the answer cell's type was changed to {student.cell_type}; its stub was graded")
            continue
        if _meta(student) and _meta(student) != {k: v for k, v in _meta(cell).items() if k in _meta(student)}:
            findings.append(f"{gid}: the answer cell's nbgrader metadata was edited; the release's was used")
        cell.source = student.source
        used.add(id(student))
    for cell in submitted.cells:
        if id(cell) in used:
            continue
        gid = _meta(cell).get("grade_id")
        if gid in release_ids or cell.get("id") in release_cell_ids:
            if not is_answer(cell) and gid and _meta(cell) != _meta(next(c for c in release.cells if _meta(c).get("grade_id") == gid)):
                findings.append(f"{gid}: the cell's nbgrader metadata was edited; the release's was used")
            continue
        if cell.source.strip():
            what = f"grade id {gid!r}" if gid else "no grade id"
            findings.append(f"an added {cell.cell_type} cell ({what}) was dropped: only the answer cells are graded")
    return rebuilt, findings


class SealSubmission(NbGraderPreprocessor):
    """Rebuild the submission from the release (see the module's docstring)."""

    def preprocess(self, nb, resources):
        release = release_notebook(self.config, resources)
        rebuilt, findings = rebuild(nb, release)
        for finding in findings:
            self.log.warning("%s: %s", resources["nbgrader"]["student"], finding)
        path = report_path(self.config, resources)
        write_report(path, {"structure": findings, "events": [], "faults": []})
        return rebuilt, resources


class _Fault(Exception):
    """The kernel died, hung past the interrupt, or its guard could not run."""

    def __init__(self, index: int, what: str):
        super().__init__(what)
        self.index, self.what = index, what


class SealedExecute(Execute):
    """nbgrader's Execute, run sealed and with faults isolated (see the module's docstring)."""

    guard_timeout = Integer(30, help="Seconds a guard may take before the kernel counts as hung").tag(config=True)
    zero_flagged = Bool(False, help="Score 0 the exercises whose answers the integrity audit flagged").tag(config=True)
    answer_timeout = Integer(None, allow_none=True, help=(
        "Seconds an answer cell (solution: true) may run, at most the cell timeout (Execute.timeout): an answer "
        "still running then is interrupted and counted as a fault (its exercise scores 0, the rest is graded in a "
        "fresh kernel with the instructor's answer standing in). An answer only defines functions and classes, "
        "so a top-level loop need not cost the whole cell timeout. None: the cell timeout, and an answer that "
        "runs past it is interrupted as any other cell, not a fault")).tag(config=True)
    replay = Unicode("", help=(
        "A folder of course directories already graded (``coursekit autograde --jobs``): instead of "
        "executing, take each submission's executed cells and integrity report from the worker and the "
        "files that REPLAY/manifest.json names, with the digests recorded there, after checking that its "
        "cells are this rebuilt notebook's, so that one process writes the gradebook and the scores are computed by the same steps as a sequential run")).tag(config=True)

    def _get_timeout(self, cell):
        """nbclient's per-cell limit: for an answer cell, its own where one is set."""
        timeout = super()._get_timeout(cell)
        if self._answer_limited(cell) and self.answer_timeout > 0:
            timeout = min(timeout, self.answer_timeout) if timeout else self.answer_timeout
        return timeout

    def _answer_limited(self, cell) -> bool:
        return self.answer_timeout is not None and cell is not None and cell.cell_type == "code" and is_answer(cell)

    async def _async_handle_timeout(self, timeout, cell=None):
        self._timed_out = timeout  # nbclient interrupts the kernel and records the cell's timeout error
        return await super()._async_handle_timeout(timeout, cell)

    def preprocess(self, nb, resources, km=None):
        if self.replay:
            return self._replayed(nb, resources)
        from nbclient import NotebookClient

        began = time.monotonic()
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        release = release_notebook(self.config, resources)
        # an answer that faulted is replaced, for the exercises after it, by the instructor's answer: the
        # later exercises, which may call it, are graded on their own (its own remaining tests score 0)
        stand_ins = {_meta(c)["grade_id"]: c.source for c in source_notebook(self.config, resources).cells
                     if is_answer(c) and c.cell_type == "code"}
        tests_of = {nb.cells[ex.answer_index].metadata["nbgrader"]["grade_id"]: ex.test_indices
                    for ex in anatomy.exercises(nb)}
        kinds = [kind(c) if c.cell_type == "code" else None for c in nb.cells]
        answers = [i for i, k in enumerate(kinds) if k == "answer"]
        path = report_path(self.config, resources)
        report = read_report(path) or {"structure": [], "events": [], "faults": []}
        stubbed: set[int] = set()
        self._forfeited: set[int] = set()
        start = 0
        while True:
            try:
                run_sync(self._run)(start, stubbed, stand_ins, kinds, report)
                break
            except _Fault as fault:
                earlier = [i for i in answers if i <= fault.index and i not in stubbed]
                if not earlier or len(report["faults"]) > len(answers):
                    raise RuntimeError(f"cell {fault.index}: {fault.what}, and no answer is left to blame") from None
                blamed = earlier[-1]
                gid = _meta(nb.cells[blamed])["grade_id"]
                self.log.error("%s: %s in cell %d; exercise %s scores 0 there, and the rest is graded in a fresh kernel",
                               resources["nbgrader"]["student"], fault.what, fault.index, gid)
                report["faults"].append({"cell": fault.index, "exercise": gid, "what": fault.what})
                cell = nb.cells[fault.index]
                cell.outputs = list(cell.get("outputs", [])) + [nbformat.v4.new_output(
                    "error", ename="GradingFault", evalue=f"{fault.what}: this exercise scores 0 and the rest of the "
                    f"notebook was graded in a fresh kernel", traceback=[f"GradingFault: {fault.what}"])]
                self.log.info("cells before %d are replayed without their outputs", fault.index + 1)
                stubbed.add(blamed)
                self._forfeited |= {i for i in tests_of.get(gid, []) if i > fault.index}
                start = fault.index + 1
        self.set_widgets_metadata()
        from coursekit.course import audit

        report["flags"] = audit.audit_answers(nb, release)
        if self.zero_flagged:
            self._zero(nb, report)
        report["seconds"] = round(time.monotonic() - began, 3)  # the class report's time per submission
        write_report(path, report)
        return self.nb, self.resources

    def _replayed(self, nb, resources):
        """The submission as a worker graded it (see ``replay``): its outputs put on this notebook's cells,
        taken only from the files the worker reported, with the digests it reported."""
        import hashlib

        info = resources["nbgrader"]
        student, assignment, name = info["student"], info["assignment"], info["notebook"]
        try:
            manifest = json.loads((Path(self.replay) / MANIFEST).read_text())
        except (OSError, ValueError) as err:
            raise FileNotFoundError(f"the parallel run's manifest {Path(self.replay) / MANIFEST} is unreadable: {err}")
        entry = manifest.get(student) if isinstance(manifest, dict) else None
        if not isinstance(entry, dict):
            raise FileNotFoundError(f"{student}: the parallel run did not grade this submission (see the logs in "
                                    f"{self.replay})")
        worker = Path(self.replay) / str(entry.get("worker", ""))
        wanted = {"notebook": f"autograded/{student}/{assignment}/{name}.ipynb",
                  "report": f"{REPORTS}/{assignment}/{student}/{name}.json"}
        data = {}
        for what, relative in wanted.items():
            expected = entry.get("files", {}).get(relative)
            path = worker / relative
            if expected is None or not path.is_file():
                raise FileNotFoundError(f"{student}: the parallel run reported no {what} {relative}")
            content = path.read_bytes()
            if hashlib.sha256(content).hexdigest() != expected:
                raise RuntimeError(f"{student}: {path} changed after its worker graded it: its grades are not "
                                   f"taken; grade the submission again")
            data[what] = content.decode()
        done = nbformat.reads(data["notebook"], as_version=4)
        mine = [(c.cell_type, c.source) for c in nb.cells]
        theirs = [(c.cell_type, c.source) for c in done.cells]
        if mine != theirs:
            raise RuntimeError(f"{student}: the notebook graded in {worker} is not this submission "
                               f"({len(theirs)} cells against {len(mine)}, or their sources differ): grade it again")
        for cell, executed in zip(nb.cells, done.cells):
            if cell.cell_type == "code":
                cell.outputs = executed.get("outputs", [])
                cell.execution_count = executed.get("execution_count")
        write_report(report_path(self.config, resources), json.loads(data["report"]))
        self.log.info("%s: %s's outputs replayed from %s (not executed again)", student, name, worker.name)
        return nb, resources

    def _zero(self, nb, report):
        flagged = {gid for gid, flags in report["flags"].items() if flags}
        flagged |= {e["exercise"] for e in report["events"] if e.get("exercise")}
        for ex in anatomy.exercises(nb):
            if ex.grade_id in flagged:
                for index in ex.test_indices:
                    nb.cells[index].outputs.append(nbformat.v4.new_output(
                        "error", ename="IntegrityFlag", evalue="this exercise was flagged by the integrity audit "
                        "and scores 0 (the instructor's setting)", traceback=["IntegrityFlag"]))

    async def _run(self, start, stubbed, stand_ins, kinds, report):
        """Run the notebook in a fresh kernel: cells before ``start`` again without keeping their
        outputs (the answers in ``stubbed`` replaced by the instructor's), then the rest."""
        self.km = self.create_kernel_manager()
        await self.async_start_new_kernel()
        await self.async_start_new_kernel_client()
        exercise_of = _exercise_of(self.nb, kinds)
        last_student = "(start)"
        try:
            await self._guard(seal.guard("start()"), 0, report, None)
            for index, cell in enumerate(self.nb.cells):
                if kinds[index] is None:
                    continue
                keep = index >= start
                target = cell if keep else nbformat.from_dict(cell)  # a replayed cell keeps its first outputs
                if index in stubbed:  # always before start: the answer blamed for a fault
                    target.source = stand_ins[_meta(cell)["grade_id"]]
                if index in self._forfeited:  # the rest of a faulted exercise's tests: not run, 0
                    cell.outputs = [nbformat.v4.new_output(
                        "error", ename="GradingFault", evalue="not run: an earlier cell of this exercise faulted",
                        traceback=["GradingFault: not run: an earlier cell of this exercise faulted"])]
                    continue
                name = _meta(cell).get("grade_id") or cell.get("id") or str(index)
                await self._guard(seal.guard(f"before({kinds[index]!r}, {name!r}, {last_student!r})"), index, report,
                                  exercise_of.get(last_student))
                if kinds[index] == "test":
                    token = secrets.token_hex(16)
                    original = target.source
                    target.source = seal.wrapper(original, token, name)
                    try:
                        await self._execute(target, index, store_history=False)
                    finally:
                        target.source = original
                    done = await self._guard(seal.guard(f"finished({token!r}, {name!r})"), index, report,
                                             exercise_of.get(name))
                    if not done.get("finished") and not any(o.get("output_type") == "error" for o in target.outputs):
                        target.outputs.append(nbformat.v4.new_output(
                            "error", ename="SealedRunError", evalue="this test did not run to its end (the notebook's "
                            "execution machinery was altered); it scores 0", traceback=["SealedRunError"]))
                        _event(report, name, "the test cell did not run to its end", exercise_of.get(name), keep)
                else:  # an instructor's answer standing in is kept out of the input history
                    await self._execute(target, index, store_history=index not in stubbed)
                    await self._guard(seal.guard(f"after({kinds[index]!r}, {name!r})"), index, report,
                                      exercise_of.get(name))
                    if kinds[index] == "answer":
                        last_student = name
        finally:
            self.shutdown_kernel = "immediate"
            await self._async_cleanup_kernel()

    async def _execute(self, cell, index, store_history):
        kept = self.nb.cells[index]  # nbclient stores the executed cell back: a replayed copy must not stay
        self._timed_out = None
        try:
            await self.async_execute_cell(cell, index, store_history=store_history)
        except DeadKernelError:
            raise _Fault(index, "the kernel died (os._exit, a crash or a signal)") from None
        except CellTimeoutError:
            raise _Fault(index, f"the cell did not stop within {self._get_timeout(cell)} s, "
                                f"even when interrupted") from None
        finally:
            self.nb.cells[index] = kept
        if self._timed_out is not None and self._answer_limited(cell):
            raise _Fault(index, f"the answer cell ran past its {self._timed_out} s limit "
                                f"(SealedExecute.answer_timeout) and was interrupted")

    async def _guard(self, expression, index, report, exercise):
        """Evaluate a guard in the kernel; a kernel that does not answer, or whose guard fails, is a fault."""
        msg_id = await ensure_async(self.kc.execute("", silent=True, store_history=False,
                                                    user_expressions={"seal": expression}, allow_stdin=False))
        loop_time = 0.0
        while True:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=1))
            except Empty:
                if not await ensure_async(self.kc.is_alive()):
                    raise _Fault(index, "the kernel died (os._exit, a crash or a signal)") from None
                loop_time += 1
                if loop_time > self.guard_timeout:
                    raise _Fault(index, f"the kernel did not answer within {self.guard_timeout} s after the cell "
                                        f"(a hang that ignores the interrupt)") from None
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                break
        result = msg["content"].get("user_expressions", {}).get("seal", {})
        try:
            value = json.loads(ast.literal_eval(result["data"]["text/plain"]))
            assert value.get("sealed") is True
        except Exception:  # noqa: BLE001 - whatever broke it, the kernel can no longer be trusted
            why = result.get("evalue") or msg["content"].get("evalue") or "no answer"
            raise _Fault(index, f"the grading guard could not run after the previous answer ({why})") from None
        for event in value.get("events", []):
            _event(report, event["cell"], event["change"], exercise, True)
        return value


def _event(report, cell, change, exercise, keep):
    entry = {"cell": cell, "change": change, "exercise": exercise}
    if keep and entry not in report["events"]:
        report["events"].append(entry)


def _exercise_of(nb, kinds) -> dict[str, str]:
    """grade id of a test or answer cell -> the grade id of its exercise's answer."""
    found, current = {}, None
    for cell, k in zip(nb.cells, kinds):
        gid = _meta(cell).get("grade_id")
        if k == "answer":
            current = gid
        if gid and k in ("answer", "test") and current:
            found[gid] = current
    return found



def secret_lines(source: NotebookNode) -> list[str]:
    """The lines a student must not read in feedback: the hidden tests' and the instructor's answers'
    (when an answer faulted, the sealed run stood the instructor's in for it), 12 characters or more."""
    lines, inside = [], False
    for cell in source.cells:
        answer = is_answer(cell) and cell.cell_type == "code"
        for line in cell.source.splitlines():
            marker = line.strip()
            if marker in ("### BEGIN HIDDEN TESTS", "### BEGIN SOLUTION"):
                inside = True
            elif marker in ("### END HIDDEN TESTS", "### END SOLUTION"):
                inside = False
            elif (inside or answer) and len(marker) >= 12:
                lines.append(marker)
    return sorted(set(lines))


class ScrubFeedback(NbGraderPreprocessor):
    """Feedback that shows no hidden test and no hidden input, whatever the student's code printed.

    Test and answer cells keep only their error messages (a test cell's printed output comes from
    the student's code called on hidden inputs; an answer cell can print what an earlier test
    passed it); every other output that quotes a line of the hidden tests or of the instructor's
    answers is replaced by a note. Runs before ClearHiddenTests, which then removes the hidden
    tests' source.
    """

    def preprocess(self, nb, resources):
        self._secrets = secret_lines(source_notebook(self.config, resources))
        return super().preprocess(nb, resources)

    def _quotes_a_secret(self, text: str) -> bool:
        return any(line in text for line in self._secrets)

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type != "code":
            return cell, resources
        graded = kind(cell) in ("answer", "test")
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                value = str(output.get("evalue", ""))[:500]
                if self._quotes_a_secret(value):
                    value = "(the message quoted the hidden tests and is not shown)"
                output["evalue"] = value
                output["traceback"] = [f"{output.get('ename', 'Error')}: {value}"]
                kept.append(output)
                continue
            if graded:
                continue
            text = output.get("text", "") if output.get("output_type") == "stream" else \
                "\n".join(str(v) for v in output.get("data", {}).values())
            if self._quotes_a_secret(text):
                kept.append(nbformat.v4.new_output("stream", name="stdout",
                                                   text="(output not shown: it quoted the hidden tests)\n"))
            else:
                kept.append(output)
        cell.outputs = kept
        return cell, resources
