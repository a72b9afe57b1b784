"""`import adlib` is cheap, and its main objects are the ones their modules define."""

import importlib
import subprocess
import sys

import pytest

import adlib


def test_import_adlib_does_not_import_torch():
    code = "import sys, adlib; print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("name", [name for name in adlib.__all__ if name != "__version__"])
def test_each_exported_name_is_its_modules_object(name):
    module = importlib.import_module(adlib._EXPORTS[name])
    assert getattr(adlib, name) is getattr(module, name)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Patchcore'"):
        adlib.Patchcore  # noqa: B018
