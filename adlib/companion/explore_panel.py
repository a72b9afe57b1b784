"""The explorer's panel: one ipywidgets control per field of a `Choice` (`adlib.companion.explore`), the status
line and an output with each update's metrics and heatmaps. ipywidgets is imported here only, when a panel is made.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from adlib.companion.explore import (
    CONTROLS,
    CORESET_SHARES,
    Choice,
    Exploration,
    Explorer,
    acting_controls,
    display_name,
)
from adlib.detectors import registry

#: What the panel says while it fits a method whose update takes far longer than the cached PatchCore family's
#: (benchmarks/NOTES.md has the measured times).
SLOW_METHODS = {
    "improved-patchcore": "K-means fits a new bank for every coreset share: tens of seconds with many training images",
    "spade": "SPADE searches a gallery of training images for every test image: minutes with many of them",
}


def fitting_message(method: str) -> str:
    """The panel's status while `method` is fitted: with a warning for the slow ones (`SLOW_METHODS`)."""
    slow = SLOW_METHODS.get(method)
    return "fitting and scoring …" + (f" ({slow})" if slow else "")


def _controls(w, explorer: Explorer, choice: Choice, categories: Sequence[str]) -> dict[str, object]:
    """One ipywidgets control per field of `choice` (sliders act when released), set to its value."""
    wide = {"style": {"description_width": "100px"}, "layout": w.Layout(width="330px")}
    slider = {"continuous_update": False, **wide}
    return {
        "category": w.Dropdown(options=list(categories), value=choice.category, description="category", **wide),
        "method": w.Dropdown(
            options=[(display_name(name), name) for name in registry.METHODS],
            value=choice.method,
            description="method",
            **wide,
        ),
        "coreset_ratio": w.FloatSlider(
            value=choice.coreset_ratio,
            min=CORESET_SHARES[0],
            max=CORESET_SHARES[-1],
            step=CORESET_SHARES[1] - CORESET_SHARES[0],
            readout_format=".0%",
            description="coreset share",
            **slider,
        ),
        "tau": w.FloatSlider(
            value=choice.tau,
            min=0.0,
            max=0.5,
            step=0.01,
            readout_format=".2f",
            description="τ (drop share)",
            **slider,
        ),
        "lof_k": w.IntSlider(value=choice.lof_k, min=2, max=20, description="LOF k", **slider),
        "noise_ratio": w.FloatSlider(
            value=choice.noise_ratio,
            min=0.0,
            max=0.3,
            step=0.01,
            readout_format=".2f",
            description="noise ratio",
            **slider,
        ),
        "noise_overlap": w.Checkbox(value=choice.noise_overlap, description="noise overlap", **wide),
        "seed": w.BoundedIntText(value=choice.seed, min=0, max=10**6, description="seed", **wide),
        "shown": w.SelectMultiple(
            options=explorer.image_names(choice.category),
            value=choice.shown or explorer.default_shown(choice.category),
            rows=8,
            description="test images",
            **wide,
        ),
    }


class ExplorerPanel:
    """ipywidgets controls for every field of a `Choice`, and an output with each update's metrics and heatmaps.

    Every change of a control runs `Explorer.update` (sliders act when released); a change of `shown`
    alone redraws the last result without refitting. Controls the chosen method does not use are
    disabled. An invalid choice (e.g. more noise than the category has defective images) prints its
    one-line reason in the output instead of raising. `last` is the latest `Exploration`.
    """

    def __init__(self, explorer: Explorer, choice: Choice, categories: Sequence[str]):
        import ipywidgets as w

        self.explorer, self.last = explorer, None
        self.controls = _controls(w, explorer, choice, categories)
        self.status = w.HTML()
        self.output = w.Output()
        self.widget = w.HBox(
            [
                w.VBox(list(self.controls.values()), layout=w.Layout(flex="0 0 340px")),
                w.VBox([self.status, self.output], layout=w.Layout(flex="1 1 auto")),
            ]
        )
        self._syncing = False
        self.controls["category"].observe(self._category_changed, names="value")
        for name, control in self.controls.items():
            if name != "category":
                control.observe(self._changed, names="value")
        self._enable_controls()

    def choice(self) -> Choice:
        """The controls' current values."""
        values = {name: control.value for name, control in self.controls.items()}
        return Choice(**{**values, "shown": tuple(values["shown"])})

    def _enable_controls(self) -> None:
        acting = acting_controls(self.controls["method"].value, self.explorer.features)
        for name in CONTROLS:
            self.controls[name].disabled = name not in acting

    def _category_changed(self, change) -> None:
        self._syncing = True  # new options and default images for the new category, then one update
        try:
            shown = self.controls["shown"]
            shown.value = ()
            shown.options = self.explorer.image_names(change["new"])
            shown.value = self.explorer.default_shown(change["new"])
        finally:
            self._syncing = False
        self.refresh()

    def _changed(self, change) -> None:
        if self._syncing:
            return
        if change["owner"] is self.controls["method"]:
            self._enable_controls()
        self.refresh()

    def refresh(self) -> Exploration | None:
        """Runs the update for the controls' values (or redraws, if only `shown` changed) and shows it."""
        choice = self.choice()
        self.status.value = f"<i>{fitting_message(choice.method)}</i>"
        try:
            if self.last is not None and dataclasses.replace(self.last.choice, shown=choice.shown) == choice:
                self.last = dataclasses.replace(self.last, choice=choice)
            else:
                self.last = self.explorer.update(choice)
        except ValueError as error:
            self.status.value = ""
            self.output.outputs = ({"output_type": "stream", "name": "stdout", "text": f"error: {error}\n"},)
            return None
        self._show(self.last)
        self.status.value = f"updated in {self.last.seconds:.1f} s"  # once the figure is there
        return self.last

    def _show(self, exploration: Exploration) -> None:
        from IPython.display import Image

        self.output.outputs = ()
        self.output.append_stdout(exploration.summary() + "\n")
        self.output.append_display_data(Image(data=exploration.png()))
