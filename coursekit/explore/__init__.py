"""Explorers (ipywidgets) and plots, one module per lecture part, on the small base in :mod:`.base`:
:mod:`.nets` (stages 01-02, 05), :mod:`.convolution` (stages 03-04), :mod:`.retrieval` (stages 06-07);
:mod:`.plots` draws for all of them."""
