"""Evidence: the papers' numbers (`paper`, `paper_data/`) and the register of their claims (`register`,
`paper_data/claims.csv`); one three-valued verdict type (`verdicts.Verdict`) from the paired bootstrap
over test images, a t interval over replicates or the range over timed repeats (and `splits`: one method's
image AUROC on two test splits, unpaired); per-image tables, and F1-optimal working points.

Imports `adlib.evaluation` and below; never the companion.
"""
