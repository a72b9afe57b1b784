"""Evaluation: the metrics (image and pixel AUROC, PRO; LOCO's AU-sPRO in `spro`), pixel statistics, experiment grids over
categories, seeds and protocols, the result store and the executors that run grids.

Imports the layers below (data, features, bank, detectors); never evidence or the companion.
"""
