"""The course checks (docs/ANATOMY.md §4), run for every stage found in solutions/ with no per-stage code.

For each stage: the release is in sync with the instructor source; the notebook anatomy is sound;
the solution executes top to bottom and passes every test cell; the released stubs fail every
test cell; every exercise has plausible wrong answers and a delegating answer, each failing at
least one of its test cells.
"""

from __future__ import annotations

import pytest

from coursekit import course

from . import support

STAGES = support.STAGES

pytestmark = pytest.mark.course


def test_the_course_has_stages():
    assert STAGES, "solutions/ holds no stage (solutions/NN-name/NN-name.py)"
    assert STAGES[0] == "01-backprop"


@pytest.mark.parametrize("stage", STAGES)
def test_release_is_in_sync_with_solutions(stage):
    problems = course.stale(support.ROOT, [stage])
    assert not problems, (
        "run `coursekit release`:\n" + "\n".join(problems) + "\n(A student working in notebooks/ sees this "
        "failure and the stub failures below by design: the course checks test the untouched release.)"
    )


@pytest.mark.parametrize("stage", STAGES)
def test_notebook_anatomy(stage):
    nb = course.read_notebook(course.solution_path(support.ROOT, stage))
    assert course.anatomy_problems(nb) == []
    assert course.stage_problems(nb, stage) == []
    assert len(course.exercises(nb)) >= 6, "a stage has at least six autograded exercises"
    assert any(course.is_manual(c) for c in nb.cells), "a stage has a manually graded question"


@pytest.mark.parametrize("stage", STAGES)
def test_released_stubs_fail_every_test_cell(stage):
    # every test cell fails in one line saying its exercise is not answered, and no locked cell outside the
    # exercises fails because an answer is missing. Where the browser test runs the release too, this run is
    # left out of the session (tests/conftest.py): that test makes the same checks on its run.
    run = support.execute(course.release_path(support.ROOT, stage))
    problems = support.stub_problems(run.nb)
    assert not problems, f"{stage}, released with its stubs:\n" + "\n".join(problems)


@pytest.mark.parametrize("stage", STAGES)
def test_wrong_answers_are_registered_for_every_exercise(stage):
    module = support.load_wrong_answers(stage)
    assert module is not None, f"tests/wrong_answers/{stage}.py is missing"
    nb = course.read_notebook(course.solution_path(support.ROOT, stage))
    ids = {ex.grade_id for ex in course.exercises(nb)}
    assert set(module.WRONG) == ids, "WRONG must cover exactly the stage's answer cells"
    assert set(module.DELEGATING) == ids, "DELEGATING must cover exactly the stage's answer cells"
    thin = {gid: len(v) for gid, v in module.WRONG.items() if len(v) < 2}
    assert not thin, f"every exercise needs at least two wrong answers: {thin}"
    solved = support.solution_answers(stage)
    for gid, answers in support.wrong_answers(stage).items():  # raises on an edit of lines that are gone
        unchanged = [label for label, source in answers.items() if source.strip() == solved[gid].strip()]
        assert not unchanged, f"{gid}: these wrong answers leave the solution as it is: {unchanged}"


@pytest.mark.parametrize("stage", STAGES)
def test_every_test_cell_has_hidden_inputs_or_says_why_not(stage):
    nb = course.read_notebook(course.solution_path(support.ROOT, stage))
    exempt = getattr(support.load_wrong_answers(stage), "VISIBLE_ONLY", {})
    tests = {course.nbgrader_meta(c)["grade_id"]: c.source for c in nb.cells if course.is_test(c)}
    missing = [gid for gid, source in tests.items() if "### BEGIN HIDDEN TESTS" not in source and gid not in exempt]
    assert not missing, f"these test cells have no hidden inputs (add them, or say why in VISIBLE_ONLY): {missing}"
    stale = [gid for gid in exempt if gid not in tests or "### BEGIN HIDDEN TESTS" in tests[gid]]
    assert not stale, f"VISIBLE_ONLY names cells that are not visible-only test cells: {stale}"


@pytest.fixture(scope="module", params=STAGES)
def session(request):
    """A kernel that ran the stage's solution top to bottom as the autograder does (the fast budget),
    shared by the checks of the solution, of the wrong answers and of the answers restored."""
    path = course.solution_path(support.ROOT, request.param)
    with support.Session(path) as s:
        yield request.param, s


def _solution_failures(s) -> dict[str, str]:
    return {c.id: why for c in s.executed if (why := support.cell_failure(c))}


def test_solution_passes_every_test_cell(session):
    stage, s = session
    failures = _solution_failures(s)
    assert not failures, "\n".join(f"cell {cell_id}: {why}" for cell_id, why in failures.items())
    assert len(s.executed) == sum(c.cell_type == "code" for c in s.nb.cells)
    print(f"{stage}: the solution executed in {s.seconds:.1f} s (fast budget)")


def _variants(stage):
    module = support.load_wrong_answers(stage)
    if module is None:
        return []
    wrong = support.wrong_answers(stage)
    delegating = [(gid, label, src) for gid, answers in module.DELEGATING.items()
                  for label, src in (answers.items() if isinstance(answers, dict) else [("delegates to coursekit", answers)])]
    return [(gid, label, src) for gid, answers in wrong.items() for label, src in answers.items()] + delegating


def test_wrong_and_delegating_answers_fail(session):
    stage, s = session
    assert not _solution_failures(s), "the solution itself fails: see test_solution_passes_every_test_cell"
    by_id = {ex.grade_id: ex for ex in course.exercises(s.nb)}
    passed, broken = [], []
    for grade_id, label, source in _variants(stage):
        answer_failure, failures = s.try_answer(by_id[grade_id], source)
        if answer_failure:  # a wrong answer must run and be caught by the tests, not crash itself
            broken.append(f"{grade_id}: {label}: {answer_failure}")
        elif not failures:
            passed.append(f"{grade_id}: {label}")
    assert not broken, "these registered answers do not even run:\n" + "\n".join(broken)
    assert not passed, "these wrong answers pass every test cell of their exercise:\n" + "\n".join(passed)


def test_valid_answers_written_another_way_pass(session):
    stage, s = session
    by_id = {ex.grade_id: ex for ex in course.exercises(s.nb)}
    failing = []
    for grade_id, answers in support.valid_answers(stage).items():
        for label, source in answers.items():
            answer_failure, failures = s.try_answer(by_id[grade_id], source)
            if answer_failure or failures:
                failing.append(f"{grade_id}: {label}: {answer_failure or failures}")
    assert not failing, "these valid answers lose points:\n" + "\n".join(failing)


def test_a_lookup_table_of_the_visible_cases_fails_every_exercise(session):
    # every exercise has hidden inputs: its answer, recorded on the visible tests and replayed, fails
    stage, s = session
    module = support.load_wrong_answers(stage)
    exempt = getattr(module, "NO_INPUTS", {})
    beaten = []
    for ex in course.exercises(s.nb):
        if ex.grade_id in exempt:
            continue
        recorded, replayed = support.try_lookup_table(s, ex)
        assert not recorded, f"{ex.grade_id}: the solution fails its visible tests while recorded: {recorded}"
        if not replayed:
            beaten.append(ex.grade_id)
    assert not beaten, f"a lookup table of the visible cases passes every test cell of: {beaten}"
    for gid, why in exempt.items():
        assert gid in {ex.grade_id for ex in course.exercises(s.nb)} and why, f"NO_INPUTS names {gid!r}, not an exercise"


def test_the_instructor_answers_pass_again_after_the_variants(session):
    # try_answer restores each answer; prove the session is not left in a state that hides failures
    stage, s = session
    for ex in course.exercises(s.nb):
        assert s.try_answer(ex, s.sources[ex.answer_index]) == (None, {}), ex.grade_id


def test_an_edit_of_lines_the_solution_no_longer_has_fails_loudly():
    solution = "def f(x):\n    y = x + 1\n    return y\n"
    assert support.apply_edits(solution, [("    y = x + 1", "    y = x - 1")], "f") == "def f(x):\n    y = x - 1\n    return y\n"
    assert support.apply_edits(solution, [("    y = x + 1\n", "")], "f") == "def f(x):\n    return y\n"
    for stale in ("    y = x + 2", "y = x + 1", "    return"):  # gone, or not whole lines
        with pytest.raises(support.StaleEdit, match="update the edit"):
            support.apply_edits(solution, [(stale, "")], "f")
    with pytest.raises(support.StaleEdit, match="2 copies"):
        support.apply_edits("a\nb\na\n", [("a", "c")], "twice")
    with pytest.raises(support.StaleEdit, match="2 copies"):  # next to each other
        support.apply_edits("a\nx\nx\nb\n", [("x", "y")], "adjacent")


def test_the_stub_check_sees_a_passing_test_a_long_failure_and_a_broken_locked_cell():
    import nbformat

    def code(kind, outputs):
        meta = {"grade_id": f"{kind}-{len(cells)}", "grade": kind == "test", "solution": kind == "answer",
                "locked": kind != "answer", "points": 1 if kind == "test" else 0}
        cell = nbformat.v4.new_code_cell("pass", metadata={"nbgrader": meta})
        cell.outputs = [nbformat.from_dict(o) for o in outputs]
        return cell

    def error(ename, lines=1):
        return {"output_type": "error", "ename": ename, "evalue": "x", "traceback": ["line"] * lines}

    cells = []
    for kind, outputs in (("answer", [error("NotImplementedError", 3)]), ("test", [error("NotAnswered")]),
                          ("locked", [])):
        cells.append(code(kind, outputs))
    nb = nbformat.v4.new_notebook(cells=cells)
    assert support.stub_problems(nb) == []
    for kind, outputs, says in (("test", [], "passes"), ("test", [error("NotAnswered", 5)], "one line"),
                                ("test", [error("AssertionError")], "one line"),
                                ("locked", [error("NameError")], "outside the exercises")):
        cells.append(code(kind, outputs))
        found = support.stub_problems(nbformat.v4.new_notebook(cells=cells))
        assert len(found) == 1 and says in found[0], found
        cells.pop()
