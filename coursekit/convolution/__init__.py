"""Lecture part "convolution": signals and LTI systems (:mod:`.signals`), filtering images
(:mod:`.filters`), the convolution layer and pooling (:mod:`.layer`); stage 03."""
