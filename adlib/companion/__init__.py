"""The companion: what only the notebooks and the explorer use - notebook set-up, publishing figures and
captions, plotting and the per-paper plot helpers, the explorer, toy data and one-figure analyses.

The top layer: it may import every package below; nothing in adlib imports it but the command line.
"""
