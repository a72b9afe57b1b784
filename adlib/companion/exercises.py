"""Exercises that are checked: each "Try it yourself" exercise is a one-line change of the parameters cell
whose expected outcome is a check the notebook runs on its own results.

How a notebook declares its exercises (see `pc_fig3_coreset_toy` for a worked example):

1. The parameters cell gains `exercise = None` (the default: nothing changes, nothing extra runs).
2. The cell right after it declares each exercise's change as literals and applies the chosen one:

       EXERCISES = {1: {"outliers": 0}, 2: {"n_selected": 200}}  # exercise number -> parameter overrides
       globals().update(exercises.changes(EXERCISES, exercise))

   so `exercise = 2` and editing the one line by hand (`n_selected = 200`) run the same notebook. Where
   quick mode trims the sample after that cell (one category, fewer images), the notebook applies the
   change again after the trim, so that the exercise's change wins; where the change is too slow for quick
   mode, `QUICK_SAMPLE = {1: {"samplers": [...]}}` beside it names a smaller sample, passed as
   `changes(EXERCISES, exercise, QUICK_SAMPLE if quick else None)`, and the exercise's text says so.
   `scripts/run_exercises.py` reads `EXERCISES` from the notebook's source (literals only).
3. The "Try it yourself" markdown states each expectation in words; the cell after it states the same
   expectation as checks, one entry per exercise, `(what is expected, a function returning Checks)`:

       CHECKS = {1: ("every sampler keeps 0 outliers", lambda: [count("outliers kept", kept, 0)]), ...}
       exercises.report(EXERCISES, CHECKS, exercise)

   It prints "Exercise 1: as expected - ..." or "Exercise 1: not as expected - ...", then each check with
   its numbers (ok / NOT);
   with `exercise = None` it lists the checks. With ADLIB_EXERCISE_STRICT=1 in the environment (what
   `make exercises` sets) an unexpected outcome raises `ExerciseFailed`, so a wrong expectation fails CI.

The checks are `direction` (a value above or below a bound), `count` (an exact or bounded count) and
`status` (a verdict's status). `make exercises` runs them in quick mode: where the expected outcome needs
the default scale, the exercise's text says so and the check is what holds at the quick scale.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import NamedTuple

from adlib.evidence.verdicts import Verdict

STRICT_ENV = "ADLIB_EXERCISE_STRICT"
WHY = (
    "a check can fail when this run's sample differs from the one the expectation was written for "
    "(quick mode runs fewer images, seeds or points), on other data (profile, data_root), or because the "
    "expectation is wrong: read the numbers against 'What to expect'"
)


class Check(NamedTuple):
    """One checked expectation: whether it held, and what was checked, with the numbers."""

    ok: bool
    what: str


class ExerciseFailed(AssertionError):
    """An exercise's outcome is not the expected one (raised in strict mode only)."""


def changes(
    exercises: Mapping[int, Mapping[str, object]],
    exercise: int | None,
    quick_sample: Mapping[int, Mapping[str, object]] | None = None,
) -> dict[str, object]:
    """The parameter overrides of exercise number `exercise` (none for None), to apply to the notebook's
    globals; an unknown number is an error naming the choices. `quick_sample` (pass it in quick mode
    only): per exercise, a smaller sample that quick mode affords (the exercise's text says so)."""
    if exercise is None:
        return {}
    if exercise not in exercises:
        raise ValueError(f"exercise={exercise!r}: this notebook's exercises are {sorted(exercises)} (or None)")
    return {**exercises[exercise], **(quick_sample or {}).get(exercise, {})}


def direction(name: str, value: float, side: str, bound: float = 0.0) -> Check:
    """`value` strictly above (side "above") or below ("below") `bound`."""
    if side not in ("above", "below"):
        raise ValueError(f"side={side!r}: choose 'above' or 'below'")
    ok = value > bound if side == "above" else value < bound
    return Check(bool(ok), f"{name} = {value:+.4g} ({'is' if ok else 'is not'} {side} {bound:g})")


def count(
    name: str, got: int, expected: int | None = None, *, at_least: int | None = None, at_most: int | None = None
) -> Check:
    """A count equal to `expected`, or within [at_least, at_most] (either may be open)."""
    if (expected is None) == (at_least is None and at_most is None):
        raise ValueError("give either expected or at_least / at_most")
    if expected is not None:
        ok, wanted = got == expected, f"{expected}"
    else:
        ok = (at_least is None or got >= at_least) and (at_most is None or got <= at_most)
        wanted = " and ".join(
            part
            for part in (at_least is not None and f">= {at_least}", at_most is not None and f"<= {at_most}")
            if part
        )
    return Check(bool(ok), f"{name}: {got} (expected {wanted})")


def status(verdicts: Sequence[Verdict], source: str, expected: str | Collection[str]) -> Check:
    """The status of the verdict built from register row `source` is `expected` (one status or several);
    a verdict missing from the run fails the check."""
    allowed = {expected} if isinstance(expected, str) else set(expected)
    found = [v for v in verdicts if v.source == source]
    if not found:
        return Check(False, f"{source}: no verdict in this run (expected {' or '.join(sorted(allowed))})")
    got = found[0].status
    return Check(got in allowed, f"{source}: {got} (expected {' or '.join(sorted(allowed))})")


Expectation = tuple[str, Callable[[], Sequence[Check]]]


def report(
    exercises: Mapping[int, Mapping[str, object]], checks: Mapping[int, Expectation], exercise: int | None
) -> str:
    """Evaluates the active exercise's checks and prints (and returns) the outcome; with `exercise` None,
    lists every exercise's change and expectation. Strict mode (ADLIB_EXERCISE_STRICT=1) raises
    `ExerciseFailed` when a check fails."""
    if set(exercises) != set(checks):
        raise ValueError(f"exercises {sorted(exercises)} and checks {sorted(checks)} must have the same numbers")
    if exercise is None:
        lines = [
            f"Exercise {n}: {', '.join(f'{k} = {v!r}' for k, v in exercises[n].items())} -> expect {checks[n][0]}"
            for n in sorted(exercises)
        ]
        text = "No exercise chosen (set `exercise = N` in the parameters cell). The exercises' checks:\n" + "\n".join(
            lines
        )
        print(text)
        return text
    expected, run = checks[exercise]
    results = list(run())
    if not results:
        raise ValueError(f"exercise {exercise}: its check returned no Check")
    failed = [c for c in results if not c.ok]
    lines = [f"  {'ok ' if c.ok else 'NOT'} {c.what}" for c in results]
    if failed:
        head = f"Exercise {exercise}: not as expected - expected {expected}; {len(failed)} of {len(results)} checks differ:"
        text = "\n".join([head, *lines, f"Why this can happen: {WHY}."])
    else:
        text = "\n".join([f"Exercise {exercise}: as expected - {expected}:", *lines])
    print(text)
    if failed and os.environ.get(STRICT_ENV) == "1":
        raise ExerciseFailed(text)
    return text
