"""Features: backbones, the extractor, PatchCore's locally aware patch features, and the feature cache.

Imports only `adlib.data` (and `adlib.files`); never the memory bank, the detectors or anything above.
"""
