"""One evaluator for every comparison: the shipped ONNX on the frozen test split.

- ``slices``: weather modes (class id offsets) and object-size buckets (training quantiles).
- ``scoring``: COCO AP through faster-coco-eval, overall and per slice, per-class thresholds,
  the confusion matrix, and the per-detection matches the bootstrap and flips reuse.
- ``evaluator``: onnxruntime over the test images, then scoring.
- ``bootstrap``: paired image bootstrap, an interval on ΔAP50-95.
- ``comparison``: champion vs challenger, intervals and the flip report.
- ``gate``: the promotion verdict from a comparison.
- ``report``: tables and plots for the UI.
- ``promotion``: what the evaluation asset runs, and its record.
"""
