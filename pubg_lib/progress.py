"""Progress bars: tqdm's, silenced where a reader should not see them. The reproduction runner sets
`PUBG_PROGRESS=0` for the notebooks it executes (progress shows in its terminal instead), which overrides a call's
own `disable=False`."""

from __future__ import annotations

import os

from tqdm.auto import tqdm as _tqdm


def tqdm(*args, **kwargs):
    if os.environ.get("PUBG_PROGRESS") == "0":
        kwargs["disable"] = True
    return _tqdm(*args, **kwargs)
