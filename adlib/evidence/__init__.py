"""Evidence: the papers' claims and numbers (`paper`, `paper_data/`), the paired bootstrap over test
images, per-image tables, t-interval and timing verdicts, and F1-optimal working points.

Imports `adlib.evaluation` and below; never the companion.
"""
