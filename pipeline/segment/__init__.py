"""View segmentation with a fine-tuned Segment Anything model (see ``docs/segment.md``).

* :mod:`.model` — the view SAM (stock ``segment_anything.modeling`` modules; decoder tokens: vehicle + one per view
  class), batched decoding, checkpoints.
* :mod:`.finetune` — Dice + cross-entropy fine-tuning with box jitter, AdamW, atomic checkpoints, validation IoU.
* :mod:`.infer` — the ``segment`` stage (``diffveri run segment``): one ``segments`` row per kept, accepted image.
* :mod:`.evaluate` / :mod:`.metrics` — per-class IoU and mIoU against ground truth, comparison PNG.
* :mod:`.synthetic` — small annotated worlds for tests and benchmarks (toy-world renderer or box vehicles).
"""
