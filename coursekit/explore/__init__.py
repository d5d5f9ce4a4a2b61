"""Explorers (ipywidgets) and plots, one module per lecture part, on the small base in :mod:`.base`:
:mod:`.nets` (stages 01-02, 05), :mod:`.convolution` (stages 03-04), :mod:`.retrieval` (stages 06-07),
:mod:`.graphs` (stages 08-09); :mod:`.plots` draws for all of them. :mod:`.apps` holds one notebook per part that
builds all of its explorers (``coursekit explore``), :mod:`.stand_ins` what those build cheaply in place of a stage's
computations."""
