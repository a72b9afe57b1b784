"""``python -m adlib.synth``: the command line of `adlib.synth.cli`."""

import sys

from adlib.synth.cli import main

sys.exit(main())
