"""Adversarial submissions of stage 01, autograded end to end through nbgrader (tests/course/test_adversarial.py).

Each entry is one student: ``base`` ("stub": the untouched release, "solution": every instructor's answer),
``answers`` (grade id -> the answer cell's whole source, over the base), ``cells`` (code cells added after
the setup cell) and ``edit`` (a change to the notebook file itself), and what must happen:

- ``"nothing"``: an attack on a release whose answers are stubs scores 0;
- ``{"without": [grade ids]}``: the attacked exercises (wrong answers dressed up by the attack) score 0
  (later exercises that call the attacked answer may lose points too: they use it);
- ``{"only": [grade ids]}``: a fault costs exactly these exercises, every other one scores full marks;
- ``"full"``: a valid answer written another way, or a harmless edit, scores full marks.

``flagged``: whether the integrity audit must list the student (attacks always are).
"""

WRONG_SIGMOID = "def sigmoid(a):\n    return np.zeros_like(np.asarray(a, dtype=float))\n"
TRANSFORMER = ("import IPython\n"
               "IPython.get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])\n")

CORPUS = {
    # --- one line gives full marks: IPython's execution machinery changed --------------------------
    "input-transformer-in-an-answer": {"base": "stub", "answers": {"sigmoid-impl": TRANSFORMER}, "expect": "nothing"},
    "input-transformer-in-an-added-cell": {"base": "stub", "cells": [TRANSFORMER], "expect": "nothing"},
    "ast-transformer": {"base": "stub", "expect": "nothing", "answers": {"sigmoid-impl": (
        "import ast\nclass Gone(ast.NodeTransformer):\n"
        "    def visit_Module(self, node):\n        return ast.Module(body=[ast.Pass()], type_ignores=[])\n"
        "get_ipython().ast_transformers.append(Gone())\n")}},
    "event-callback": {"base": "stub", "expect": "nothing", "answers": {"sigmoid-impl": (
        "def before(info):\n    globals()['check_close'] = lambda *a, **k: None\n    globals()['check_shape'] = lambda *a, **k: None\n"
        "    globals()['own_work'] = __import__('contextlib').nullcontext\n"
        "get_ipython().events.register('pre_run_cell', before)\n" + WRONG_SIGMOID)}},
    # --- tests leaning on names the student can replace ----------------------------------------------
    "rebinds-the-grading-helpers": {"base": "solution", "expect": {"without": ["sigmoid-impl"]}, "answers": {
        "sigmoid-impl": WRONG_SIGMOID + "check_close = check_shape = check = lambda *a, **k: None\n"}},
    "replaces-a-helpers-code-object": {"base": "solution", "expect": {"without": ["sigmoid-impl"]}, "answers": {
        "sigmoid-impl": WRONG_SIGMOID + "from coursekit.grading import checks\n"
                        "checks.check_close.__code__ = (lambda *a, **k: None).__code__\n"
                        "checks.check_shape.__code__ = (lambda *a, **k: a[0]).__code__\n"}},
    "replaces-numpy-and-torch-functions": {"base": "solution", "expect": {"without": ["sigmoid-impl"]}, "answers": {
        "sigmoid-impl": WRONG_SIGMOID + "np.count_nonzero = lambda *a, **k: 0\ntorch.equal = lambda *a, **k: True\n"
                        "np.abs = lambda x: 0 * np.asarray(x)\n"}},
    "replaces-a-builtin": {"base": "solution", "expect": {"without": ["sigmoid-impl"]}, "answers": {
        "sigmoid-impl": WRONG_SIGMOID + "import builtins\nbuiltins.int = lambda *a, **k: 0\n"}},
    "redefines-the-oracle-and-problem-helper": {"base": "solution", "expect": {"without": ["forward-impl"]}, "answers": {
        "forward-impl": (
            "def forward(X, T, params, lam):\n    A1 = X @ params['W1']\n"
            "    return 0.0, {'X': X, 'A1': A1, 'Z': A1, 'A2': A1, 'Y': A1}\n"
            "class _Same:\n    def __init__(self, X, T, params, lam):\n        L, c = forward(X, T, params, lam)\n"
            "        self.loss, self.A1, self.A2 = L, c['A1'], c['A2']\n"
            "torch_two_layer = _Same\n")}},
    "rebinds-helpers-while-its-answer-runs": {"base": "solution", "expect": {"without": ["sigmoid-impl"]}, "answers": {
        "sigmoid-impl": ("def sigmoid(a):\n    g = globals()\n"
                         "    g['check_close'] = g['check_shape'] = lambda *x, **k: None\n"
                         "    return np.zeros_like(np.asarray(a, dtype=float))\n")}},
    # --- holes in the delegation guard ---------------------------------------------------------------
    "copies-the-reference-code-object": {"base": "solution", "expect": {"without": ["softmax-impl"]}, "answers": {
        "softmax-impl": "import types\nsoftmax = types.FunctionType(backprop.softmax.__code__, backprop.softmax.__globals__,\n"
                        "                             'softmax', backprop.softmax.__defaults__)\n"}},
    "reloads-the-reference-module": {"base": "solution", "expect": {"without": ["softmax-impl"]}, "answers": {
        "softmax-impl": "import importlib\nfresh = importlib.reload(backprop)\nsoftmax = fresh.softmax\n"}},
    "loads-a-second-copy-of-the-module": {"base": "solution", "expect": {"without": ["softmax-impl"]}, "answers": {
        "softmax-impl": ("import importlib.util, sys\nspec = importlib.util.spec_from_file_location('mine', backprop.__file__)\n"
                         "mine = importlib.util.module_from_spec(spec)\nsys.modules['mine'] = mine\nspec.loader.exec_module(mine)\n"
                         "softmax = mine.softmax\n")}},
    "execs-the-reference-source": {"base": "solution", "expect": {"without": ["softmax-impl"]}, "answers": {
        "softmax-impl": ("import inspect\nscope = dict(vars(backprop))\nexec(inspect.getsource(backprop.softmax), scope)\n"
                         "softmax = scope['softmax']\n")}},
    "scipy-expit-under-another-name": {"base": "solution", "expect": {"without": ["sigmoid-impl"]}, "answers": {
        "sigmoid-impl": "from scipy.special import expit as logistic\ndef sigmoid(a):\n    return logistic(np.asarray(a, dtype=float))\n"}},
    "torch-softmax-under-another-name": {"base": "solution", "expect": {"without": ["softmax-impl"]}, "answers": {
        "softmax-impl": "sm = torch.softmax\ndef softmax(A):\n    return sm(torch.as_tensor(np.asarray(A, dtype=float)), 1).numpy()\n"}},
    # --- feedback that could leak the hidden tests -----------------------------------------------------
    "prints-the-input-history": {"base": "solution", "expect": "full", "flagged": True, "answers": {
        "backward-impl": "__SOLUTION__\nimport linecache\nprint(In)\nprint(_ih)\n"
                                               "print([e[2] for e in linecache.cache.values()])\n"}},
    # --- faults: one bad cell costs one exercise -----------------------------------------------------
    "kills-the-kernel": {"base": "solution", "expect": {"only": ["softmax-impl"]}, "answers": {
        "softmax-impl": "__SOLUTION__\nimport os\nos._exit(0)\n"}},
    "hangs-ignoring-signals": {"base": "solution", "expect": {"only": ["softmax-impl"]}, "answers": {
        "softmax-impl": ("import signal\ndef softmax(A):\n    signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                         "    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True:\n        pass\n")}},
    "edits-cell-metadata": {"base": "solution", "expect": "full", "flagged": True, "edit": "metadata"},
    # --- correct answers written another valid way keep every point ---------------------------------
    "float32-sigmoid": {"base": "solution", "expect": "full", "flagged": False, "answers": {"sigmoid-impl": (
        "def sigmoid(a):\n    a = np.asarray(a, dtype=np.float32)\n    e = np.exp(-np.abs(a))\n"
        "    return np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(np.float32)\n")}},
    "tanh-sigmoid-and-seterr-raise": {"base": "solution", "expect": "full", "flagged": False, "answers": {"sigmoid-impl": (
        "np.seterr(all='raise')\ndef sigmoid(a):\n    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(a, dtype=float)))\n")}},
    "loops-einsum-and-a-debug-print-to-stderr": {"base": "solution", "expect": "full", "flagged": False, "answers": {
        "softmax-impl": ("import sys\ndef softmax(A):\n    A = np.asarray(A, dtype=float)\n    out = np.empty_like(A)\n"
                         "    for n in range(A.shape[0]):\n        row = np.exp(A[n] - A[n].max())\n        out[n] = row / row.sum()\n"
                         "    print('softmax called on', A.shape, file=sys.stderr)\n    return out\n"),
        "cross-entropy-impl": ("def cross_entropy(A, T):\n    A = np.asarray(A, dtype=float)\n    m = A.max(axis=1)\n"
                               "    lse = m + np.log(np.exp(A - m[:, None]).sum(axis=1))\n"
                               "    return float(np.einsum('nk,nk->', T, lse[:, None] - A) / A.shape[0])\n")}},
}
