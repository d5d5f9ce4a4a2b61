"""Lecture part "neural networks": backprop by hand (:mod:`.backprop`, stage 01), the autodiff engine
(:mod:`.autodiff`) and the lecture's operations written with it (:mod:`.ops`, stage 02), torch models
(:mod:`.models`, stage 04 on) and the training loop (:mod:`.training`, stage 04 on), AlexNet and its
ingredients (:mod:`.alexnet`, stage 05), its augmentation batched on the device (:mod:`.augment`,
stage 05), a pretrained ImageNet network, offline (:mod:`.pretrained`, a tool for stage 05 on), and
what a trained network responds to (:mod:`.inspect`, stage 05 on)."""
