"""Lecture part "image retrieval" (stages 06-07): losses for learning embeddings from pairs and triplets,
and hard-negative mining (:mod:`.losses`, stage 06); DrLIM's nearest-neighbour and random pairs
(:mod:`.pairs`, stage 06); DrLIM's network, its 4s and 9s, shifted digits and slant (:mod:`.siamese`,
stage 06); pooled descriptors (:mod:`.pooling`: MAC, SPoC, GeM, R-MAC), whitening (:mod:`.whitening`),
class activation maps and CroW (:mod:`.cam`), mAP as the benchmarks compute it (:mod:`.evaluation`),
a pretrained network's descriptors, batch by batch (:mod:`.descriptors`) and fine-tuning with hard
negatives (:mod:`.finetune`), stage 07."""
