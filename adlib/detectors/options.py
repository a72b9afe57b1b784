"""The methods' command-line options, declared beside their settings.

A detector's `options` (`adlib.detectors.base.Detector.options`) map the settings fields a user may change
(dotted for nested settings, e.g. `features.patch_size`) to the `Option` that changes them, so that
`python -m adlib run`, the explorer and `adlib.detectors.registry.method_settings` set them one way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    """One command-line option (`python -m adlib run --coreset 0.2`): its flag, help text, value type and choices.

    `default` is the value that every method reading the option already has in its preset (None: each
    method keeps its own), so an option left at its default changes nothing and is not applied.
    `negates`: a flag without a value (default False: not given) that sets its boolean field to False
    (`--no-soft-weight`).
    """

    flag: str
    help: str
    type: Callable[[str], object] | None = None
    default: object = None
    choices: Sequence[str] | None = None
    negates: bool = False

    @property
    def dest(self) -> str:
        """The option's attribute name in the parsed arguments (argparse's rule: `--top-k` -> `top_k`)."""
        return self.flag.removeprefix("--").replace("-", "_")

    def field_value(self, value: object) -> object:
        """The settings field's value for the option's `value` (a negating flag flips it)."""
        return not value if self.negates else value


def replaced(settings, values: Mapping[str, object]):
    """`settings` with the fields at the dotted paths of `values` set: each nested settings object is replaced
    once, with all of its changes (its checks see the combination, not one change at a time)."""
    top: dict[str, object] = {}
    nested: dict[str, dict[str, object]] = {}
    for path, value in values.items():
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            top[head] = value
    for head, changes in nested.items():
        top[head] = replaced(getattr(settings, head), changes)
    return dataclasses.replace(settings, **top)
