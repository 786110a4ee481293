"""The feature contract: window lengths, the ordered feature names and their version.

Models record ``FEATURE_NAMES`` and ``FEATURE_SPEC_VERSION`` in their metadata; a service refuses a
model whose contract differs from the one compiled here. Bump the version on any change of
meaning, order or window.
"""

from __future__ import annotations

from typing import Final

FEATURE_SPEC_VERSION: Final = "1"

#: Look-back windows in seconds of event time. A vector describes the window [t - W, t).
WINDOWS: Final[tuple[int, ...]] = (10, 30, 60, 300)
#: Windows that also carry spread, return and range statistics.
DETAIL_WINDOWS: Final[tuple[int, ...]] = (10, 30, 60)
#: Seconds of uninterrupted history a product needs before its first vector is emitted. Windows
#: longer than this are computed over the history available (``covered`` seconds), with
#: rate-normalised statistics so that a partly covered window stays comparable.
WARMUP_SECONDS: Final = 60
#: A silence longer than this (feed dropped, recording hole) restarts the product's history.
MAX_GAP_SECONDS: Final = 60
#: Realized volatility is expressed per this many seconds, whatever the window.
RV_UNIT_SECONDS: Final = 60.0


def _names() -> tuple[str, ...]:
    names: list[str] = []
    for w in WINDOWS:
        names += [f"rv_{w}s", f"tick_rate_{w}s"]
    for w in DETAIL_WINDOWS:
        names += [f"spread_mean_{w}s", f"spread_std_{w}s", f"ret_mean_{w}s", f"range_{w}s"]
    names += ["vol_ratio_10_60", "vol_ratio_60_300", "seconds_since_tick"]
    return tuple(names)


FEATURE_NAMES: Final[tuple[str, ...]] = _names()

FEATURE_DOCS: Final[dict[str, str]] = {
    "rv_Ws": "realized volatility of mid-price log returns in the window, bps per 60 s",
    "tick_rate_Ws": "ticks per second in the window",
    "spread_mean_Ws": "mean bid-ask spread of the window's ticks, bps (last quote if none)",
    "spread_std_Ws": "standard deviation of the spread of the window's ticks, bps",
    "ret_mean_Ws": "mean tick-to-tick mid log return in the window, bps",
    "range_Ws": "(max mid - min mid) / last mid over the window, bps, the entering mid included",
    "vol_ratio_10_60": "rv_10s / rv_60s (1 when both are zero)",
    "vol_ratio_60_300": "rv_60s / rv_300s (1 when both are zero)",
    "seconds_since_tick": "seconds from the last tick to the vector's time",
}
