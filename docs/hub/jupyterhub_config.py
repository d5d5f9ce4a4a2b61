"""JupyterHub for the course on one server (README, "A class on JupyterHub").

One machine, one environment: the course's, installed where every user can read it (the students' repository,
written by ``coursekit handout``, ``pip install``-ed into /opt/dl4vision: never the instructor's repository,
which holds the solutions), from which the hub, its proxy and every user's single-user server run. Each
person is a Unix account of the server: the instructor holds the course repository in their home
(``~/dl4vision``: the nbgrader course directory), students hold their fetched assignments in theirs, and
nbgrader's exchange, a folder every account can write, passes releases, submissions and feedback between them.
nbgrader knows a student by their Unix user name, so it has to be one account per person: JupyterHub's
default LocalProcessSpawner starts each server as its user, and the default PAM authenticator logs people in
with their Unix passwords.

Run it from a folder of its own (its database, cookie secret and proxy pid file are written there), as root
(the spawner switches to each user), with the course's environment first on PATH::

    cd /srv/jupyterhub && PATH=/opt/dl4vision/bin:$PATH jupyterhub -f /etc/jupyterhub/jupyterhub_config.py

The site's own settings (who teaches, the students' group) are in the first lines below. The course's test
(tests/course/test_hub.py) loads this file as it is and changes only what a test on loopback needs: the
authenticator, the addresses, the exchange folder and a stand-in for /etc/jupyter.
"""

import os
import sys

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

# --- the site -----------------------------------------------------------------------------------------------
INSTRUCTORS = {"instructor"}  # Unix accounts that teach: the hub's admins, the only users with Formgrader
STUDENTS_GROUP = "dl4vision"  # the Unix group of the class's student accounts
EXCHANGE = "/srv/nbgrader/exchange"  # nbgrader's exchange: root-owned, mode 1777 (world-writable, sticky)
ENV = sys.prefix  # the course's environment: the one this hub runs from

# --- who logs in ----------------------------------------------------------------------------------------------
c.JupyterHub.authenticator_class = "pam"  # Unix accounts and passwords
c.Authenticator.admin_users = set(INSTRUCTORS)
c.LocalAuthenticator.allowed_groups = {STUDENTS_GROUP}
c.Authenticator.allowed_users = set(INSTRUCTORS)  # the instructors may log in without being in the group

# --- where it listens -------------------------------------------------------------------------------------------
# Plain HTTP on port 8000: put a TLS-terminating proxy in front of it, or give JupyterHub a certificate
# (c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key) and bind https://:443.
c.JupyterHub.bind_url = "http://:8000"
# The proxy from the course's environment: the PyPI package configurable-http-proxy (a Python
# implementation of JupyterHub's proxy), installed with the course; the npm package of the same name works too.
c.ConfigurableHTTPProxy.command = [os.path.join(ENV, "bin", "configurable-http-proxy")]

# --- each user's server ------------------------------------------------------------------------------------------
c.JupyterHub.spawner_class = "localprocess"  # the default, named: a process of the user's own account
c.Spawner.cmd = [os.path.join(ENV, "bin", "jupyterhub-singleuser")]  # JupyterLab, nbgrader and coursekit
c.Spawner.default_url = "/lab"
c.Spawner.environment = {
    # the course's tools first (nbgrader, coursekit, alembic for the gradebook), then the system's
    "PATH": os.pathsep.join([os.path.join(ENV, "bin"), "/usr/local/bin", "/usr/bin", "/bin"]),
    # the exchange for nbgrader: read by the course's nbgrader_config.py (the instructor's) and by the
    # students' /etc/jupyter/nbgrader_config.py (docs/hub/nbgrader_config.py)
    "COURSEKIT_EXCHANGE": EXCHANGE,
}
# The first start of a server imports JupyterLab and torch on a busy machine: give it time.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 90


def formgrader_for_instructors_only(spawner):
    """Formgrader (nbgrader's instructor pages) is served to the hub's admins only; every other user's
    server runs without it (its assignment list, for fetching and submitting, stays)."""
    if not spawner.user.admin:
        spawner.args = [*spawner.args, "--ServerApp.jpserver_extensions=nbgrader.server_extensions.formgrader=False"]


c.Spawner.pre_spawn_hook = formgrader_for_instructors_only

# Stop every user's server and the proxy when the hub stops (the defaults, named).
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
