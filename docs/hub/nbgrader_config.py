"""nbgrader's settings for every user of the hub: install as /etc/jupyter/nbgrader_config.py (README, "A class
on JupyterHub"). A student's Assignments tab reads it to fetch, submit and fetch feedback; the instructor's
own ~/.jupyter/nbgrader_config.py (docs/hub/instructor_nbgrader_config.py) adds the course directory.

nbgrader knows each student by their Unix user name: nothing here names anyone.
"""

import os

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.course_id = "dl4vision"  # the course_id of the course's own nbgrader_config.py
# The hub's exchange: the hub names it in every server's environment (docs/hub/jupyterhub_config.py)
c.Exchange.root = os.environ.get("COURSEKIT_EXCHANGE", "/srv/nbgrader/exchange")
