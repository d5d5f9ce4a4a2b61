"""The explorer apps: one notebook per lecture part that builds every explorer of that part, served by
``coursekit explore [PART]`` (:mod:`coursekit.course.apps`) as a page with no code showing (Voilà).

Each app is the jupytext percent file ``<part>.py`` here, named after its module of :mod:`coursekit.explore`
(``nets``, ``convolution``, ``retrieval``, ``graphs``) and turned into a notebook when it is served. They are
kept as percent files, not as ``.ipynb``, for the reasons the stage sources are (``solutions/NN-name/NN-name.py``):
a diff of an app reads as code, nothing generated (outputs, widget state, cell ids) is committed, and
``tests/test_layout.py`` reads their imports like any module's, so an app holds to the layers too. The header
of each lists the stages whose explorers it shows (``coursekit: stages: [...]``), so that ``coursekit explore
04-mnist`` finds its part.

The files are notebooks, not modules: nothing imports them (importing one would build its explorers).
Every :class:`~coursekit.explore.base.Explorer` of ``coursekit.explore.<part>`` must be built in the app of
that part (``tests/test_explore_apps.py`` checks it; the browser test, ``tests/course/test_explore_apps.py``,
opens every app and changes a control of every explorer). What a stage notebook computes before its
explorer (a trained net, descriptors) is built here from library pieces, cheaply: the fast budget's sizes,
data from the course's cache only (``coursekit data fetch`` puts it there), :mod:`coursekit.explore.stand_ins`
for what no library function makes.
"""
