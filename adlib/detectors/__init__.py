"""Detectors: the base (settings -> fit -> predict -> scores, one model file), PatchCore with its improved
PatchCore and SoftPatch presets, PaDiM, SPADE, the image-level denoiser, their command-line options, and
the registry of methods.

Imports the layers below: `adlib.data`, `adlib.features`, `adlib.bank`.
"""
