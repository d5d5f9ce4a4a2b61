"""A class on JupyterHub, end to end on this machine (README, "A class on JupyterHub").

A hub on loopback runs the department's example config (docs/hub/jupyterhub_config.py) as it is, with only
what a test needs changed: a test authenticator (JupyterHub's shared-password one, the instructor the hub's
admin), free ports on 127.0.0.1, and its folders in a temporary one. Its spawner is the default
LocalProcessSpawner, so the instructor and the two students are real Unix users, created here (useradd) and
removed afterwards: nbgrader knows a student by their Unix user name. Their servers run this repository's
environment (the example's ``jupyterhub-singleuser`` of the venv the hub runs from).

Everything goes over HTTP through the hub's proxy, as the people would do it: each user logs in with their
password through the hub's REST API for a token and starts their own server; the instructor drives
Formgrader's API in theirs (generate and release the assignment, collect, autograde each student, generate
and release feedback); the students drive nbgrader's assignment list in theirs (fetch, submit, fetch
feedback) and answer through the Jupyter contents API, one correctly and one wrongly. The course directory
is a copy of this course's nbgrader_config.py (so the sealed run grades) with a made-up assignment of one
exercise: an answer cell, a visible test (1 point) and a hidden one (2 points).

Where the environment's interpreter lives in a folder other users cannot enter (pyenv's under /root, 0700,
on CI's machine), the hub runs in a private mount namespace in which that folder shows only the interpreter,
the venv and the repository (:func:`reachable_mounts`); nothing changes outside it. A department installs the
course where everyone can read it instead.

It needs root (useradd, a hub that switches to its users, the mount namespace); without root it fails and
says so, as every test here fails rather than skips. ``-m "not hub"`` leaves it out. About 25-35 s.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from . import support

pytestmark = pytest.mark.hub

ROOT = support.ROOT
EXAMPLE = ROOT / "docs" / "hub"
VENV_BIN = Path(sys.executable).parent  # the environment the hub and every user's server run from
COURSE_ID = "dl4vision"
ASSIGNMENT = "hub-check"
INSTRUCTOR = "ckhub-teacher"
STUDENTS = ("ckhub-ada", "ckhub-bob")
USERS = (INSTRUCTOR, *STUDENTS)
MARK = "coursekit hub test"  # the GECOS field of the users this test creates: only those are ever removed
ANSWERS = {"ckhub-ada": "def double(x):\n    return x * 2\n",  # right: every point
           "ckhub-bob": "def double(x):\n    return x + 2\n"}  # right at 2 only: the visible test, not the hidden
SCORES = {"ckhub-ada": 3.0, "ckhub-bob": 1.0}
MAX_SCORE = 3.0
HIDDEN = 'assert double(-7) == -14, "double(x) is wrong for some x"'
STARTUP = 180  # seconds for the hub and for the three servers to come up on a busy 2-core machine


def needs_root():
    if os.geteuid() != 0:
        pytest.fail("tests/course/test_hub.py runs a JupyterHub whose spawner starts each user's server as a Unix "
                    "user, and creates those three users (useradd) and removes them: it needs root (CI runs as "
                    "root). Run it as root, or leave it out with -m \"not hub\".", pytrace=False)
    missing = [tool for tool in ("useradd", "userdel", "runuser", "unshare") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"tests/course/test_hub.py needs {', '.join(missing)} (Debian's passwd and util-linux)",
                    pytrace=False)


# --- the notebook -------------------------------------------------------------------------------------------------

def cell(kind: str, source: str, **nbgrader) -> nbformat.NotebookNode:
    made = nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
    if nbgrader:
        made.metadata["nbgrader"] = {"schema_version": 3, "grade": False, "solution": False, "locked": False,
                                     **nbgrader}
    return made


def source_notebook() -> nbformat.NotebookNode:
    """The instructor's source: one exercise, an answer cell, a visible test and a hidden one."""
    nb = nbformat.v4.new_notebook(cells=[
        cell("markdown", "# A check of the class hub\n\n### Exercise 1.1\n\nWrite `double(x)`, twice `x`."),
        cell("code", "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
             solution=True, grade_id="double"),
        cell("code", 'assert double(2) == 4, "double(2) should be 4"',
             grade=True, locked=True, grade_id="double-visible", points=1),
        cell("code", f"### BEGIN HIDDEN TESTS\n{HIDDEN}\n### END HIDDEN TESTS",
             grade=True, locked=True, grade_id="double-hidden", points=2),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


# --- HTTP through the proxy -------------------------------------------------------------------------------------

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never an http_proxy


def call(method: str, url: str, token: str | None = None, body=None, form: dict | None = None,
         timeout: float = 300):
    headers = {"Authorization": f"token {token}"} if token else {}
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with DIRECT.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def ok(method: str, url: str, token: str, **kwargs):
    status, value = call(method, url, token, **kwargs)
    assert 200 <= status < 300, f"{method} {url}: HTTP {status}: {str(value)[:2000]}"
    return value


def contents(server: str, token: str, path: str, **query) -> dict:
    """A file or folder of the user's server, through the Jupyter contents API."""
    url = f"{server}/api/contents/{urllib.parse.quote(path)}"
    return ok("GET", f"{url}?{urllib.parse.urlencode(query)}" if query else url, token)


def formgrader_ok(answer, what: str):
    """Formgrader's actions answer {"success": ..., "log": ..., "error": ...}."""
    assert isinstance(answer, dict) and answer.get("success") is True, \
        f"Formgrader's {what} failed: {answer.get('error') if isinstance(answer, dict) else answer}\n" \
        f"{answer.get('log', '') if isinstance(answer, dict) else ''}"


def listed(answer, what: str) -> list[dict]:
    """The assignment list's answer {"success": ..., "value": [...]}: its entries for the assignment."""
    assert isinstance(answer, dict) and answer.get("success") is True, f"{what}: {answer}"
    return [entry for entry in answer["value"] if entry.get("assignment_id") == ASSIGNMENT]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def page_text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page))


# --- Unix users and their processes ------------------------------------------------------------------------------

def processes_of(uids: set[int]) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        uid = re.search(r"^Uid:\s+(\d+)", status, re.M)
        if uid and int(uid.group(1)) in uids:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def remove_user(name: str) -> None:
    """Remove a user this test made (its processes first), never anyone else."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return
    if entry.pw_gecos != MARK:
        pytest.fail(f"a Unix user {name!r} exists and is not this test's: remove it or rename the test's users",
                    pytrace=False)
    for pid in processes_of({entry.pw_uid}):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    subprocess.run(["userdel", "--remove", "--force", name], capture_output=True, text=True)


# --- the hub -----------------------------------------------------------------------------------------------------

def hub_config(example: Path, ports: dict[str, int], exchange: Path, etc: Path, passwords: dict[str, str]) -> str:
    """The test's jupyterhub_config.py: the department's example, loaded as it is, then what a test on
    loopback needs (authenticator, addresses, folders)."""
    return f'''c = get_config()
load_subconfig({str(example)!r})  # the department's example (README, "A class on JupyterHub"), as it is

# a test authenticator: one password for the students, another for the admin, who is the instructor
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {passwords["student"]!r}
c.SharedPasswordAuthenticator.admin_password = {passwords["admin"]!r}
c.Authenticator.admin_users = {{{INSTRUCTOR!r}}}
c.Authenticator.allowed_users = {set(USERS)!r}
# loopback only, on free ports
c.JupyterHub.bind_url = "http://127.0.0.1:{ports["public"]}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {ports["hub"]}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{ports["api"]}"
c.Spawner.ip = "127.0.0.1"
# this test's exchange, and its stand-in for /etc/jupyter (the students' nbgrader_config.py)
c.Spawner.environment["COURSEKIT_EXCHANGE"] = {str(exchange)!r}
c.Spawner.environment["JUPYTER_CONFIG_PATH"] = {str(etc)!r}
'''


def _blocked(path: Path) -> Path | None:
    """The topmost folder on the way to ``path`` (itself included) that other users cannot enter."""
    for folder in [*reversed(path.parents), path]:
        if folder.is_dir() and not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


def reachable_mounts(staging: Path) -> list[str]:
    """Shell lines that make this environment reachable for the hub's users, in the hub's own mount namespace.

    The environment's interpreter may live where only root can enter: pyenv's under /root (0700) on CI's
    machine, where the venv was made. A department installs the course where everyone can read it (/opt);
    here the hub runs in a private mount namespace in which each such folder is a fresh tmpfs (mode 755)
    holding only the trees the servers need (the interpreter's prefix, the venv, the repository), bound
    back in from their real places. Nothing changes outside the namespace; no lines when nothing is blocked.
    """
    trees = sorted({Path(os.path.realpath(p)) for p in (sys.base_prefix, sys.prefix, ROOT)})
    trees = [t for t in trees if not any(o != t and o in t.parents for o in trees)]
    blocked: dict[Path, list[Path]] = {}
    for tree in trees:
        top = _blocked(tree)
        if top is not None:
            blocked.setdefault(top, []).append(tree)
    lines = []
    for n, (top, inside) in enumerate(sorted(blocked.items())):
        staged = [staging / f"{n}-{i}" for i in range(len(inside))]
        lines += [f"mkdir -p {shlex.quote(str(s))} && mount --bind {shlex.quote(str(t))} {shlex.quote(str(s))}"
                  for s, t in zip(staged, inside)]
        lines.append(f"mount -t tmpfs -o mode=755 coursekit-hub {shlex.quote(str(top))}")
        lines += [f"mkdir -p {shlex.quote(str(t))} && mount --bind {shlex.quote(str(s))} {shlex.quote(str(t))}"
                  for s, t in zip(staged, inside)]
    return lines


class Hub:
    """The hub's process, its folder and the users' tokens."""

    def __init__(self, base: Path):
        self.base = base
        self.folder = base / "hub"
        self.log_path = self.folder / "jupyterhub.log"
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.tokens: dict[str, str] = {}
        self.proxy_pid: int | None = None

    def log(self, last: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-last:]
        except OSError:
            return "(no log)"

    def start(self, config: str, public_port: int, student: str):
        self.folder.mkdir(mode=0o700)
        (self.folder / "jupyterhub_config.py").write_text(config)
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("PYTEST", "COURSEKIT_", "NBGRADER", "JUPYTER", "JPY_"))}
        env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "/usr/bin:/bin")])
        env["HOME"] = str(self.folder)
        mounts = reachable_mounts(self.base / "mounts")
        python = shlex.quote(str(VENV_BIN / "python"))
        script = "\n".join([
            "set -e", *mounts,
            # the users' servers run this environment: every user must be able to import the course from it
            f"if ! runuser -u {shlex.quote(student)} -- {python} -c 'import coursekit, nbgrader, jupyterhub'; then",
            f"  echo 'a user other than root cannot import the course from {VENV_BIN.parent}: the environment, "
            f"its interpreter and the repository must be readable by every user' >&2; exit 3",
            "fi",
            f"exec {shlex.quote(str(VENV_BIN / 'jupyterhub'))} -f jupyterhub_config.py",
        ])
        command = ["sh", "-c", script]
        if mounts:  # in a private mount namespace of its own: the machine's folders are left as they are
            command = ["unshare", "--mount", "--propagation", "private", "--", *command]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(command, cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self.url = f"http://127.0.0.1:{public_port}"
        deadline = time.monotonic() + STARTUP
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the hub exited with status {self.process.returncode}:\n{self.log()}", pytrace=False)
            with contextlib.suppress(OSError):
                status, answer = call("GET", f"{self.url}/hub/api/", timeout=5)
                if status == 200 and isinstance(answer, dict) and "version" in answer:
                    with contextlib.suppress(OSError, ValueError):  # the proxy runs in a session of its own
                        self.proxy_pid = int((self.folder / "jupyterhub-proxy.pid").read_text())
                    return answer
            time.sleep(0.3)
        pytest.fail(f"the hub did not answer within {STARTUP} s:\n{self.log()}", pytrace=False)

    def user(self, name: str) -> str:
        return f"{self.url}/user/{name}"

    def stop(self, timeout: float = 60) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            return None

    def kill_proxy(self):
        """After a hub that did not stop cleanly: its proxy, in a session of its own, would stay."""
        if self.proxy_pid and alive(self.proxy_pid) and \
                b"configurable-http-proxy" in Path(f"/proc/{self.proxy_pid}/cmdline").read_bytes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proxy_pid, signal.SIGKILL)


def wait_until_ready(hub: Hub, names: tuple[str, ...]):
    deadline = time.monotonic() + STARTUP
    waiting = set(names)
    while waiting and time.monotonic() < deadline:
        for name in sorted(waiting):
            model = ok("GET", f"{hub.url}/hub/api/users/{name}", hub.tokens[name])
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                waiting.discard(name)
        if hub.process.poll() is not None:
            pytest.fail(f"the hub exited while the servers started:\n{hub.log()}", pytrace=False)
        time.sleep(0.5)
    assert not waiting, f"these servers did not start within {STARTUP} s: {sorted(waiting)}\n{hub.log()}"


def wait_until_stopped(hub: Hub, names: tuple[str, ...], timeout: float = 60):
    deadline = time.monotonic() + timeout
    running = set(names)
    while running and time.monotonic() < deadline:
        for name in sorted(running):
            model = ok("GET", f"{hub.url}/hub/api/users/{name}", hub.tokens[name])
            if not model.get("servers"):
                running.discard(name)
        time.sleep(0.3)
    assert not running, f"these servers did not stop within {timeout} s: {sorted(running)}\n{hub.log()}"


# --- the class ---------------------------------------------------------------------------------------------------

def make_users(base: Path) -> dict[str, pwd.struct_passwd]:
    homes = base / "home"
    homes.mkdir(mode=0o755)
    made = {}
    for name in USERS:
        remove_user(name)  # a run that was killed may have left it
        done = subprocess.run(["useradd", "--create-home", "--home-dir", str(homes / name), "--shell", "/bin/bash",
                               "--comment", MARK, "--user-group", name], capture_output=True, text=True)
        assert done.returncode == 0, f"useradd {name}: {done.stderr}"
        made[name] = pwd.getpwnam(name)
    return made


def make_course(home: Path, entry: pwd.struct_passwd) -> Path:
    """The instructor's course directory ~/dl4vision (a copy of this course's nbgrader_config.py and the
    made-up assignment) and their ~/.jupyter/nbgrader_config.py, the example's."""
    course = home / "dl4vision"
    (course / "solutions" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy2(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    nbformat.write(source_notebook(), course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    (home / ".jupyter").mkdir()
    shutil.copy2(EXAMPLE / "instructor_nbgrader_config.py", home / ".jupyter" / "nbgrader_config.py")
    for path in [home / ".jupyter", course, *course.rglob("*"), *(home / ".jupyter").rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return course


def answer_cell(nb: dict) -> dict:
    cells = [c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "double"]
    assert len(cells) == 1, "the fetched notebook should hold the answer cell once"
    return cells[0]


def the_class(base: Path, seen: dict) -> None:
    """Start the hub, run the class's assignment through it, stop it; record what was seen on the way."""
    users = make_users(base)
    exchange = base / "exchange"
    exchange.mkdir()
    os.chmod(exchange, 0o1777)  # what nbgrader needs of its exchange: world-writable, sticky
    etc = base / "etc" / "jupyter"
    etc.mkdir(parents=True)
    shutil.copy2(EXAMPLE / "nbgrader_config.py", etc / "nbgrader_config.py")
    for folder in (base / "etc", etc, base):
        os.chmod(folder, 0o755)
    course = make_course(Path(users[INSTRUCTOR].pw_dir), users[INSTRUCTOR])

    timings = seen["timings"] = {}
    mark = time.monotonic()
    passwords = {"student": secrets.token_hex(8), "admin": secrets.token_hex(20)}
    ports = dict(zip(("public", "hub", "api"), free_ports(3)))
    hub = seen["hub"] = Hub(base)
    hub.start(hub_config(EXAMPLE / "jupyterhub_config.py", ports, exchange, etc, passwords), ports["public"],
              STUDENTS[0])

    # each user logs in with their password (the hub's REST API) for a token; a wrong one gets none
    status, _ = call("POST", f"{hub.url}/hub/api/users/{STUDENTS[0]}/tokens",
                     body={"auth": {"username": STUDENTS[0], "password": passwords["admin"]}})
    seen["wrong password"] = status
    status, _ = call("POST", f"{hub.url}/hub/api/users/nobody-here/tokens",
                     body={"auth": {"username": "nobody-here", "password": passwords["student"]}})
    seen["unknown user"] = status
    for name in USERS:
        password = passwords["admin" if name == INSTRUCTOR else "student"]
        token = ok("POST", f"{hub.url}/hub/api/users/{name}/tokens", None,
                   body={"auth": {"username": name, "password": password}, "note": MARK, "expires_in": 3600})
        hub.tokens[name] = token["token"]
    seen["admin"] = {name: ok("GET", f"{hub.url}/hub/api/users/{name}", hub.tokens[name])["admin"] for name in USERS}

    # each starts their own server, all at once (the hub answers a start when it is up, or after 10 s)
    with ThreadPoolExecutor(len(USERS)) as pool:
        list(pool.map(lambda name: call("POST", f"{hub.url}/hub/api/users/{name}/server", hub.tokens[name]), USERS))
    wait_until_ready(hub, USERS)
    seen["server uids"] = {}
    for name in USERS:
        pids = processes_of({users[name].pw_uid})
        seen["server uids"][name] = bool(pids)
    timings["hub and servers up"] = time.monotonic() - mark
    teacher, t_token = hub.user(INSTRUCTOR), hub.tokens[INSTRUCTOR]
    seen["lab"] = {name: call("GET", f"{hub.user(name)}/lab", hub.tokens[name])[0] for name in USERS}
    seen["formgrader"] = {name: call("GET", f"{hub.user(name)}/formgrader/api/status", hub.tokens[name])[0]
                          for name in USERS}

    began = time.monotonic()
    # the instructor: generate and release the assignment through Formgrader
    formgrader_ok(ok("POST", f"{teacher}/formgrader/api/assignment/{ASSIGNMENT}/assign", t_token), "generate")
    formgrader_ok(ok("POST", f"{teacher}/formgrader/api/assignment/{ASSIGNMENT}/release", t_token), "release")
    timings["generate and release"] = time.monotonic() - began

    # the students: fetch through their assignment list, answer through the contents API, submit
    course_form = {"course_id": COURSE_ID, "assignment_id": ASSIGNMENT}
    seen["released"], seen["fetched"], seen["submitted"] = {}, {}, {}
    for name in STUDENTS:
        server, token = hub.user(name), hub.tokens[name]
        seen["released"][name] = [e["status"] for e in listed(
            ok("GET", f"{server}/assignments?course_id={COURSE_ID}", token), f"{name}'s assignment list")]
        fetched = listed(ok("POST", f"{server}/assignments/fetch", token, form=course_form), f"{name}'s fetch")
        seen["fetched"][name] = [e["status"] for e in fetched]
        path = f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb"
        nb = contents(server, token, path)["content"]
        seen.setdefault("stub", {})[name] = answer_cell(nb)["source"]
        answer_cell(nb)["source"] = ANSWERS[name]
        ok("PUT", f"{server}/api/contents/{urllib.parse.quote(path)}", token,
           body={"type": "notebook", "format": "json", "content": nb})
        submitted = listed(ok("POST", f"{server}/assignments/submit", token, form=course_form), f"{name}'s submit")
        seen["submitted"][name] = sorted({e["status"] for e in submitted})
    timings["fetch, answer, submit"] = time.monotonic() - began - timings["generate and release"]

    # the instructor: collect, autograde each student, generate and release the feedback
    mark = time.monotonic()
    formgrader_ok(ok("POST", f"{teacher}/formgrader/api/assignment/{ASSIGNMENT}/collect", t_token), "collect")
    for name in STUDENTS:
        formgrader_ok(ok("POST", f"{teacher}/formgrader/api/submission/{ASSIGNMENT}/{name}/autograde", t_token),
                      f"autograde of {name}")
    timings["collect and autograde"] = time.monotonic() - mark
    seen["formgrader scores"] = {s["student"]: (s["score"], s["max_score"]) for s in
                                 ok("GET", f"{teacher}/formgrader/api/submissions/{ASSIGNMENT}", t_token)}
    mark = time.monotonic()
    formgrader_ok(ok("POST", f"{teacher}/formgrader/api/assignment/{ASSIGNMENT}/generate_feedback", t_token),
                  "generate_feedback")
    formgrader_ok(ok("POST", f"{teacher}/formgrader/api/assignment/{ASSIGNMENT}/release_feedback", t_token),
                  "release_feedback")

    # the students: fetch their feedback and read it through the contents API
    seen["feedback"] = {}
    for name in STUDENTS:
        server, token = hub.user(name), hub.tokens[name]
        ok("POST", f"{server}/assignments/fetch_feedback", token, form=course_form)
        pages = {}
        for stamp in contents(server, token, f"{ASSIGNMENT}/feedback")["content"]:  # one folder per submission
            for item in contents(server, token, stamp["path"])["content"]:
                pages[item["path"]] = contents(server, token, item["path"], format="text", type="file")["content"]
        seen["feedback"][name] = pages
    timings["feedback"] = time.monotonic() - mark

    # what the instructor's course directory holds, read as root
    seen["collected"] = {}
    for name in STUDENTS:
        path = course / "submitted" / name / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        seen["collected"][name] = answer_cell(nbformat.read(path, as_version=4))["source"] if path.is_file() else None
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        seen["gradebook"] = {}
        for name in STUDENTS:
            nb = gb.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, name)
            seen["gradebook"][name] = (nb.score, nb.max_score,
                                       {g.name: g.score for g in nb.grades if g.cell_type == "code"})
    seen["integrity reports"] = {name: (course / "integrity" / ASSIGNMENT / name / f"{ASSIGNMENT}.json").is_file()
                                 for name in STUDENTS}
    seen["autograded"] = {name: "\n".join(c.source for c in nbformat.read(
        course / "autograded" / name / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4).cells) for name in STUDENTS}
    seen["course's own exchange"] = (course / "exchange").exists()
    seen["exchange"] = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (exchange / COURSE_ID).iterdir()}

    # shut down: each user stops their server through the hub, then the hub stops (and its proxy with it)
    mark = time.monotonic()
    with ThreadPoolExecutor(len(USERS)) as pool:
        list(pool.map(lambda name: call("DELETE", f"{hub.url}/hub/api/users/{name}/server", hub.tokens[name]), USERS))
    wait_until_stopped(hub, USERS)
    proxy_pid = hub.proxy_pid
    seen["proxy was running"] = proxy_pid is not None and alive(proxy_pid)
    seen["hub exit"] = hub.stop()
    deadline = time.monotonic() + 10  # the proxy is terminated as the hub exits, and may take a moment
    while True:
        seen["proxy left"] = proxy_pid is not None and alive(proxy_pid)
        seen["left over"] = {name: [p for p in processes_of({users[name].pw_uid}) if alive(p)] for name in USERS}
        if time.monotonic() > deadline or not (seen["proxy left"] or any(seen["left over"].values())):
            break
        time.sleep(0.2)
    for name in USERS:
        remove_user(name)
    seen["users left"] = [name for name in USERS if _exists(name)]
    timings["shutdown"] = time.monotonic() - mark


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="module")
def hub_class():
    needs_root()
    base = Path(tempfile.mkdtemp(prefix="coursekit-hub-", dir="/tmp"))
    seen: dict = {}
    began = time.monotonic()
    try:
        the_class(base, seen)
    except BaseException:
        if seen.get("hub") is not None:  # shown with the failure (pytest prints a failed fixture's output)
            print(f"the end of the hub's log (its own and every user's server's):\n{seen['hub'].log(20000)}")
        raise
    finally:
        hub = seen.get("hub")
        if hub is not None:
            hub.stop()
            hub.kill_proxy()
        for name in USERS:
            remove_user(name)
        shutil.rmtree(base, ignore_errors=True)
    seen["seconds"] = time.monotonic() - began
    print(f"\nthe class on the hub took {seen['seconds']:.1f} s: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in seen["timings"].items()))
    return seen


def test_a_class_on_jupyterhub(hub_class):
    seen = hub_class
    # logging in: the test authenticator, the instructor the hub's admin
    assert seen["wrong password"] == 403 and seen["unknown user"] == 403, "the hub gave a token without the password"
    assert seen["admin"] == {INSTRUCTOR: True, **{s: False for s in STUDENTS}}
    assert all(seen["server uids"].values()), f"a server does not run as its own Unix user: {seen['server uids']}"
    assert seen["lab"] == {name: 200 for name in USERS}, f"JupyterLab did not open: {seen['lab']}"
    assert seen["formgrader"] == {INSTRUCTOR: 200, **{s: 404 for s in STUDENTS}}, \
        f"Formgrader should be the instructor's only: {seen['formgrader']}"
    # release and fetch: each student saw the release and fetched it, with its stub in the answer cell
    for name in STUDENTS:
        assert seen["released"][name] == ["released"], seen["released"]
        assert "fetched" in seen["fetched"][name], seen["fetched"]
        assert "NotImplementedError" in seen["stub"][name] and "2 * x" not in seen["stub"][name]
        assert "submitted" in seen["submitted"][name], seen["submitted"]
    # collect: both submissions, each the student's own answer
    assert seen["collected"] == ANSWERS
    assert seen["course's own exchange"] is False, "the course's nbgrader_config.py used its own exchange folder"
    # the exchange: the release readable by all; submissions and feedback not listable by other students
    # (a student finds their own feedback by their submission's hash), as nbgrader sets them
    assert sorted(seen["exchange"]) == ["feedback", "inbound", "outbound"], seen["exchange"]
    assert seen["exchange"]["outbound"] & stat.S_IROTH
    assert not seen["exchange"]["inbound"] & stat.S_IROTH and not seen["exchange"]["feedback"] & stat.S_IROTH, \
        {k: oct(v) for k, v in seen["exchange"].items()}
    # autograde: sealed (the course's nbgrader_config.py was loaded: its integrity reports), exactly the known scores
    assert seen["integrity reports"] == {s: True for s in STUDENTS}, "autograde did not run the course's sealed run"
    assert {s: v[:2] for s, v in seen["gradebook"].items()} == {s: (SCORES[s], MAX_SCORE) for s in STUDENTS}, \
        seen["gradebook"]
    assert seen["gradebook"]["ckhub-bob"][2] == {"double-visible": 1.0, "double-hidden": 0.0}
    assert seen["formgrader scores"] == {s: (SCORES[s], MAX_SCORE) for s in STUDENTS}
    # feedback: one page for each student, their own, without the hidden test
    for name in STUDENTS:
        assert HIDDEN in seen["autograded"][name], "the autograded notebook should hold the hidden test"
        pages = seen["feedback"][name]
        assert len(pages) == 1 and list(pages)[0].endswith(f"{ASSIGNMENT}.html"), pages.keys()
        text = page_text(next(iter(pages.values())))
        other = next(s for s in STUDENTS if s != name)
        assert ANSWERS[name].splitlines()[1].strip() in text, f"{name}'s feedback does not show their answer"
        assert ANSWERS[other].splitlines()[1].strip() not in text, f"{name} got {other}'s feedback"
        total = f"{ASSIGNMENT} (Score: {SCORES[name]:.1f} / {MAX_SCORE:.1f})"  # the page's heading
        assert total in re.sub(r"\s+", " ", text), f"{name}'s feedback does not give their score, {total}"
        assert "double(-7)" not in text and "HIDDEN TESTS" not in text, f"{name}'s feedback shows the hidden test"
    # shutdown: the servers, the proxy and the hub stopped, nothing of the users runs, the users are gone
    assert seen["proxy was running"] and not seen["proxy left"], "the proxy outlived the hub"
    assert seen["hub exit"] == 0, f"the hub did not stop cleanly on SIGTERM (exit status {seen['hub exit']}; " \
                                  f"None: still running after a minute)"
    assert seen["left over"] == {name: [] for name in USERS}, f"processes left running: {seen['left over']}"
    assert seen["users left"] == []


def test_the_example_configs_load_and_keep_formgrader_to_the_instructors(monkeypatch):
    """The department's files as a hub and nbgrader read them (no root, no hub): what the README's table says."""
    from traitlets.config.loader import PyFileConfigLoader

    hub = PyFileConfigLoader("jupyterhub_config.py", path=str(EXAMPLE)).load_config()
    env = Path(sys.prefix)
    assert hub.JupyterHub.authenticator_class == "pam" and hub.JupyterHub.spawner_class == "localprocess"
    assert hub.Authenticator.admin_users == {"instructor"} and hub.LocalAuthenticator.allowed_groups == {"dl4vision"}
    assert hub.Spawner.cmd == [str(env / "bin" / "jupyterhub-singleuser")]
    assert Path(hub.Spawner.cmd[0]).is_file() and Path(hub.ConfigurableHTTPProxy.command[0]).is_file()
    assert hub.Spawner.environment["COURSEKIT_EXCHANGE"] == "/srv/nbgrader/exchange"

    class User:
        def __init__(self, admin):
            self.admin = admin

    class Spawner:
        def __init__(self, admin):
            self.user, self.args = User(admin), ["--debug"]

    teacher, student = Spawner(True), Spawner(False)
    for spawner in (teacher, student):
        hub.Spawner.pre_spawn_hook(spawner)
    assert teacher.args == ["--debug"]
    assert student.args == ["--debug", "--ServerApp.jpserver_extensions=nbgrader.server_extensions.formgrader=False"]

    monkeypatch.delenv("COURSEKIT_EXCHANGE", raising=False)
    everyone = PyFileConfigLoader("nbgrader_config.py", path=str(EXAMPLE)).load_config()
    assert everyone.CourseDirectory.course_id == COURSE_ID == \
        PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config().CourseDirectory.course_id
    assert everyone.Exchange.root == "/srv/nbgrader/exchange"
    readme = (ROOT / "README.md").read_text()
    for name in ("jupyterhub_config.py", "nbgrader_config.py", "instructor_nbgrader_config.py"):
        assert f"docs/hub/{name}" in readme, f"the README's hub section does not name docs/hub/{name}"
