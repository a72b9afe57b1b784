"""The embedded benchmark: an MVTec-AD-style anomaly-detection data set made offline, deterministically.

Why: the `synthetic` profile must run anywhere, with no download, and still be a real test of the
methods. So every pixel comes from photographs that ship inside installed packages, or from objects
drawn here:

* textures are random crops (small scale / rotation jitter, as from a fixed camera) of real photos: `skimage.data.brick`,
  `grass`, `gravel` (CC0, bundled with scikit-image) and the large photos of the `mvtb-data` package
  (MIT): brick walls and paving of `walls-l.png` / `walls-r.png`, the slate roof of `roof.png`.
  Train and test crops are drawn from the same regions, so good test images follow the training
  distribution;
* objects (`pill`, `nut`, `screw`) are drawn procedurally, aligned (same pose up to a small jitter, as
  in MVTec's object categories), shaded with a simple Lambert + Phong model and laid on a
  low-contrast real-photo background, with natural variation between good samples (pose, colour,
  lighting, speckles, machining marks, background crop, sensor noise).

A sample is made in three steps: a noise-free *scene* (the clean image, the region where defects may
go, and for objects the parameters it was drawn from), an optional *defect* (one small function per
defect kind, returning the altered image and its pixel mask), and sensor noise. The defect is
composited only inside its mask, so pixels outside the mask are bit-identical to the defect-free
image the defect was put on, and the mask covers exactly the altered pixels. Defects come in several
sizes and strengths, some small and faint, so that the benchmark is not trivial.

Determinism: every image draws from its own `numpy.random.Generator`, seeded by
`SeedSequence([seed, crc32(category), crc32(split), index])`; PNGs are written by PIL with fixed
options and no metadata. The same seed gives the same bytes, whatever categories are chosen and in
whatever order. A category is written into a temporary sibling folder and moved into place with
`os.replace`, so an interrupted run never leaves a half category that looks complete.

Layout (exactly MVTec AD's)::

    <out>/<category>/train/good/000.png
    <out>/<category>/test/good/000.png
    <out>/<category>/test/<defect_type>/000.png
    <out>/<category>/ground_truth/<defect_type>/000_mask.png   (mode 'L', values 0/255)

CLI: ``python -m adlib.synth --out data/synthetic [--seed 0] [--categories brick pill]
[--overview figures/benchmark_overview.png]``.

Modules: `drawing` (primitives), `scenes` (photos, crops, texture scenes), `objects` (the drawn pill,
nut and screw), `defects`, `categories` (the nine categories and their defect settings), `samples`
(one sample from its seed), `writer` (`generate`: the folders and README), `cli` (the command line).

A separate LOCO-style benchmark (scenes of several parts with *logical* anomalies, in MVTec LOCO AD's
layout, its own root): `loco_scenes` (painting parts onto a shared canvas) and `loco` (its categories
and `generate_loco`); ``python -m adlib.synth --layout loco --out data/synthetic-loco`` (``make data-loco``).
"""

from adlib.synth.categories import CATEGORIES, CategoryInfo, defect_counts, defect_types
from adlib.synth.cli import main
from adlib.synth.samples import GENERATOR_VERSION, GeneratedSample, make_sample
from adlib.synth.writer import generate

__all__ = [
    "CATEGORIES",
    "GENERATOR_VERSION",
    "CategoryInfo",
    "GeneratedSample",
    "defect_types",
    "defect_counts",
    "generate",
    "make_sample",
    "main",
]
