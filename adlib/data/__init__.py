"""Data: data sets in the MVTec AD layout (and LOCO, BTAD), image and mask reading, and the experimental
protocols (low-shot draws, SoftPatch's noisy training sets, test subsets), the transformed training copies
of SoftPatch's Table 10 (`transforms`); `loco` reads LOCO's per-defect regions and saturation thresholds (for
sPRO); `fetch` downloads them.

The lowest layer: it imports nothing of adlib but `adlib.files`.
"""
