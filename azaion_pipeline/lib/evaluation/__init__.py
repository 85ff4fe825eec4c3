"""One evaluator for every comparison: the shipped ONNX on the frozen test split.

- ``slices``: weather modes (class id offsets) and object-size buckets (training quantiles).
- ``scoring``: COCO AP through faster-coco-eval, overall and per slice, plus the per-detection
  matches the bootstrap, the thresholds and the flip report reuse.
- ``evaluator``: onnxruntime over the test images, then scoring, thresholds and plots.
- ``comparison``: champion vs challenger, paired bootstrap and flip report.
- ``gate``: the promotion verdict from a comparison.
"""
