"""Evidence: the papers' numbers (`paper`, `paper_data/`), the register of their claims (`register`,
`paper_data/claims.csv`), the paired bootstrap over test images, per-image tables, t-interval and timing
verdicts, and F1-optimal working points.

Imports `adlib.evaluation` and below; never the companion.
"""
