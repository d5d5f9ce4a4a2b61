"""nbgrader's settings for the instructor on the hub: install as ~/.jupyter/nbgrader_config.py in the
instructor's home (README, "A class on JupyterHub").

The instructor's single-user server starts in their home, so Formgrader would not find the course's own
nbgrader_config.py (nbgrader reads the one in the current folder): this file loads it from the course
repository, cloned as ~/dl4vision, with everything in it (the sealed run, its integrity reports, the
feedback's scrubbing), and makes that folder the course directory. The exchange is the hub's
(COURSEKIT_EXCHANGE, read by the course's nbgrader_config.py), so `nbgrader collect` in a terminal in the
course directory and Formgrader's Collect look at the same folder.
"""

import os

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

COURSE = os.path.expanduser("~/dl4vision")  # the course repository: nbgrader's course directory
CONFIG = os.path.join(COURSE, "nbgrader_config.py")
if not os.path.isfile(CONFIG):  # load_subconfig would skip a missing file in silence: grading unsealed
    raise FileNotFoundError(f"{CONFIG} is missing: clone the course repository as {COURSE}")
load_subconfig(CONFIG)  # noqa: F821 - provided by nbgrader when it loads this file
c.CourseDirectory.root = COURSE
