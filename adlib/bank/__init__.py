"""The memory bank: sampling (greedy coreset, random, learned proxies), K-means clustering, SoftPatch's
denoising, nearest-neighbour search, and the patch / image scores and maps built from it.

Works on tensors of patch features: it imports no other adlib package (the features package beside it
included).
"""
