"""Figure helpers draw what they are given: one bar per method at its mean, its interval as the error bar, and
the method's colour."""

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import to_hex

from pubg_lib import plots

matplotlib.use("Agg")


def test_interval_bars_draw_each_mean_with_its_interval_in_the_method_colour():
    table = pd.DataFrame(
        {
            "method": ["original", "GA lr=0.003", "PUBG"],
            "usr": [0.1, 1.0, 0.9],
            "usr_ci_low": [0.05, 1.0, 0.8],
            "usr_ci_high": [0.2, 1.0, 0.95],
        }
    )
    fig = plots.interval_bars(table, {"usr": "USR"}, ncols=2)
    ax = fig.axes[0]
    bars = ax.patches
    assert [b.get_height() for b in bars] == [0.1, 1.0, 0.9]
    palette = plots.method_palette(table["method"])
    assert [to_hex(b.get_facecolor()) for b in bars] == [palette[m] for m in table["method"]]
    assert palette["GA lr=0.003"] != plots.METHOD_COLORS["GA"]  # a variant is drawn darker than its method
    (errorbars,) = [c for c in ax.containers if hasattr(c, "lines")]
    segments = errorbars.lines[2][0].get_segments()
    np.testing.assert_allclose([(s[0][1], s[1][1]) for s in segments], [(0.05, 0.2), (1.0, 1.0), (0.8, 0.95)])
    assert not fig.axes[1].get_visible()  # the unused panel is hidden
    assert ax.get_title() == "USR"
    undefined = plots.interval_bars(table.assign(usr=[0.1, np.nan, 0.9]), {"usr": "USR"}).axes[0].patches
    assert np.isnan(undefined[1].get_height())  # an undefined mean is not drawn as a measured zero
