"""nbgrader configuration of the course "Deep learning for vision" (see README, "For instructors").

The repository root is the course directory: instructor sources in solutions/, the student
releases in notebooks/ (committed); submitted/, autograded/, feedback/ and gradebook.db are
git-ignored.
"""

import os

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.root = "."
c.CourseDirectory.course_id = "dl4vision"
# The exchange of nbgrader's release / fetch / submit / collect, for one machine: a folder of the course
# directory (git-ignored), so that Formgrader's Release and Collect work without root's /srv. Students on
# the same machine point their nbgrader at it (README, "For instructors"). On a JupyterHub the hub names
# its shared exchange (/srv/nbgrader/exchange) in every server's environment as COURSEKIT_EXCHANGE
# (docs/hub/jupyterhub_config.py, README "A class on JupyterHub"), and that one is used.
if os.environ.get("COURSEKIT_EXCHANGE"):
    c.Exchange.root = os.environ["COURSEKIT_EXCHANGE"]
else:
    c.Exchange.root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exchange")
    os.makedirs(c.Exchange.root, mode=0o777, exist_ok=True)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
# The jupytext percent sources (solutions/NN-name/NN-name.py) hold solutions: never release them.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "[0-9][0-9]-*.py"]

# A notebook's cells each get this long on a 2-core CPU; the heaviest test cell of the fast budget
# takes a few seconds. A student's infinite loop is interrupted here and the grading goes on.
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True

# The stub left in each answer cell of a release: its error names the exercise ("Exercise 1.2
# (softmax-impl)", filled in by coursekit.course.nbgrader_ext.NamedStubs) and says what to do.
STUB = 'raise NotImplementedError("{exercise} is not answered yet: write your code here, in place of this line")'
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\n" + STUB}
# nbgrader's generate_assignment steps, with NamedStubs in place of ClearSolutions.
c.GenerateAssignment.preprocessors = [
    "nbgrader.preprocessors.IncludeHeaderFooter",
    "nbgrader.preprocessors.InstantiateTests",
    "nbgrader.preprocessors.LockCells",
    "coursekit.course.nbgrader_ext.NamedStubs",
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.CheckCellMetadata",
    "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.SaveCells",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbgrader.preprocessors.ClearMarkScheme",
    "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# The sealed run (coursekit/course/sealing.py, docs/ANATOMY.md "Grading integrity"): each submission is
# rebuilt from the release (only the answer cells come from the student; added cells are dropped), then
# executed with guards around every cell, test cells in their own namespace, and faults (a dead kernel,
# a hang past the interrupt) costing only their exercise. Findings go to integrity/ and to
# `coursekit audit`. Set c.SealedExecute.zero_flagged = True to score 0 the exercises the audit flags.
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "coursekit.course.sealing.SealSubmission",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.Autograde.autograde_preprocessors = [
    "coursekit.course.sealing.SealedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.SealedExecute.zero_flagged = False
# An answer cell only defines functions and classes (milliseconds; a first import, seconds on a slow
# laptop): one still running after 60 s, a top-level loop, is interrupted and counted as a fault, so it
# costs its exercise, the later exercises are graded with the instructor's answer standing in, and it
# costs 60 s of grading rather than the cell timeout's 120 s.
c.SealedExecute.answer_timeout = 60

# Any stderr output in a test cell scores 0 (nbgrader treats it as an error). Drop known benign
# library messages that can appear the first time a machine runs the course.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = (
    r"(Matplotlib is building the font cache"
    r"|Fontconfig warning"
    r"|Unable to import Axes3D"
    r"|UserWarning: Failed to initialize NumPy"
    r"|Warning: Cannot change to a different GUI toolkit)"
)

# Feedback returned to students: what the student's code printed in answer and test cells removed (it
# could show hidden inputs), any output quoting the hidden tests or the instructor's answers replaced,
# hidden tests removed, and errors reduced to their message (a traceback in a test cell would quote
# the hidden test's source).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "coursekit.course.sealing.ScrubFeedback",
    "nbgrader.preprocessors.ClearHiddenTests",
    "coursekit.course.nbgrader_ext.StripTracebacks",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
