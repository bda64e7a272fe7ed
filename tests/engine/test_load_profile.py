"""The seasonal profile's leave-one-day-out values (engine/load_profile.py): the forecaster's
correction and error quantiles are fitted on them, so they must equal a profile built without
that day, smoothing included (a day's neighbouring slots must not leak into its own values)."""

from __future__ import annotations

import numpy as np
import pytest

from custom_components.datacenter_power.engine.load_profile import (
    SeasonalProfile,
    smooth_rows,
)

BPD = 24


def _profile(y: np.ndarray, w: np.ndarray, kernel: tuple[float, ...]) -> SeasonalProfile:
    slots = np.arange(len(y)) % BPD
    s = np.bincount(slots, weights=w * y, minlength=BPD)
    sw = np.bincount(slots, weights=w, minlength=BPD)
    return SeasonalProfile(
        bpd=BPD,
        spec_sum=smooth_rows(s, BPD, kernel),
        spec_w=smooth_rows(sw, BPD, kernel),
        count=np.bincount(slots, minlength=BPD).astype(np.int64),
        slot_sum=smooth_rows(s, BPD, kernel),
        slot_w=smooth_rows(sw, BPD, kernel),
        offset=np.zeros(1),
        kernel=kernel,
        blend=1.0,
    )


@pytest.mark.parametrize("kernel", [(1.0,), (1.0, 2.0, 1.0), (1.0, 2.0, 3.0, 2.0, 1.0)])
def test_leave_one_day_out_equals_a_profile_without_that_day(kernel: tuple[float, ...]) -> None:
    rng = np.random.default_rng(3)
    days = 6
    y = rng.normal(10, 2, days * BPD)
    w = np.exp(-np.arange(days * BPD)[::-1] / 100.0)
    full = _profile(y, w, kernel)
    keys = np.arange(len(y)) % BPD
    for day in range(days):
        sl = slice(day * BPD, (day + 1) * BPD)
        loo = full.loo_values(keys[sl], keys[sl], y[sl], w[sl])
        keep = np.ones(len(y), dtype=bool)
        keep[sl] = False
        # Built without the day: its slots get no weight at all.
        without = _profile(np.where(keep, y, 0.0), np.where(keep, w, 0.0), kernel)
        expected = without.values(keys[sl], keys[sl])
        half = len(kernel) // 2
        inner = slice(half, BPD - half)  # around midnight the smoothing wraps within a row
        np.testing.assert_allclose(loo[inner], expected[inner], rtol=1e-10)


def test_fit_prefers_smoothing_for_noise_and_none_for_sharp_shapes() -> None:
    rng = np.random.default_rng(1)
    days = 14
    slots = np.arange(days * BPD) % BPD
    keys = slots.copy()
    w = np.ones(days * BPD)
    smooth_shape = 10 + np.sin(2 * np.pi * slots / BPD)
    noisy, _ = SeasonalProfile.fit(
        smooth_shape + rng.normal(0, 1.0, len(slots)), keys, slots, w, BPD, BPD,
        smooth=True, pooled=False,
    )  # fmt: skip
    assert len(noisy.kernel) > 1
    sharp = 10 + 5.0 * (slots % 2)  # alternating slots: any smoothing blurs it
    crisp, _ = SeasonalProfile.fit(
        sharp + rng.normal(0, 0.05, len(slots)), keys, slots, w, BPD, BPD,
        smooth=True, pooled=False,
    )  # fmt: skip
    assert crisp.kernel == (1.0,)


def test_pooled_shape_is_unbiased_when_day_types_cover_the_slots_unevenly() -> None:
    """Two non-working days, one working day and the next working day's morning (a history
    that ends at "now"): the afternoon slots hold one working day, the morning slots two. A
    plain mean per slot leaned the afternoon's shape towards the non-working level, and the
    pooled forecast of the working afternoon came out low (by 1/11 of the level gap here;
    the engine then drained onto an MPDU whose afternoon peak it underestimated). Shape and
    levels fitted jointly recover it exactly."""
    shape = 10 + 3 * np.cos(2 * np.pi * (np.arange(BPD) - 15) / BPD)
    gap = 2.0  # working days draw this much more
    day_type = [1, 1, 0, 0]  # 0 working, 1 non-working; the last day stops at 09:00
    y = np.concatenate([shape + gap * (1 - d) for d in day_type])[: 3 * BPD + 9]
    slots = np.arange(len(y)) % BPD
    rows = np.repeat(day_type, BPD)[: len(y)]
    keys = rows * BPD + slots
    w = np.ones(len(y))
    prof, _ = SeasonalProfile.fit(y, keys, slots, w, 2 * BPD, BPD, smooth=False, pooled=True)
    pooled = SeasonalProfile(
        prof.bpd, prof.spec_sum, prof.spec_w, prof.count, prof.slot_sum, prof.slot_w,
        prof.offset, prof.kernel, blend=0.0,
    )  # fmt: skip
    working_afternoon = pooled.values(np.arange(12, BPD), np.arange(12, BPD))
    np.testing.assert_allclose(working_afternoon, shape[12:] + gap, atol=1e-3)
