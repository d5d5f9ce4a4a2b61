"""Lecture part "neural networks": backprop by hand (:mod:`.backprop`, stage 01), the autodiff engine
(:mod:`.autodiff`) and the lecture's operations written with it (:mod:`.ops`, stage 02), torch models
(:mod:`.models`, stage 04 on) and the training loop (:mod:`.training`, stage 04 on)."""
