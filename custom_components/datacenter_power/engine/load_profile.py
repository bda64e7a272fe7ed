"""The seasonal profile under the load forecaster (engine/forecast.py): what a time of day on a
given kind of day usually draws.

Two estimates are blended, and the blend and a smoothing over neighbouring slots are chosen by
leave-one-out error on the history itself (no constant tuned to one data set):

* *specific*: a recency-weighted mean per key (a slot of a weekday, or of a working or non-
  working day), every day type its own shape;
* *pooled*: one shape for all days plus a level per day type; far less noisy when the day types
  differ by a level only, or when only a few days of each are held.

``values`` with the readings themselves gives leave-one-out values (each reading against a
profile that does not contain it): the forecaster's correction and its error quantiles are
fitted on those, so they are out-of-sample errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

type FloatArray = npt.NDArray[np.float64]
type IntArray = npt.NDArray[np.int64]
type CountArray = npt.NDArray[np.integer]

KERNELS: Final = ((1.0,), (1.0, 2.0, 1.0), (1.0, 2.0, 3.0, 2.0, 1.0))
"""Candidate smoothings over neighbouring slots."""
BLENDS: Final = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Candidate weights of the specific estimate against the pooled one."""
_BACKFIT_ROUNDS: Final = 4
"""Rounds of the joint fit of the pooled shape and the day types' levels (each round shrinks
the imbalance's bias by the share of the slots' readings from other day types)."""


def smooth_rows(a: FloatArray, width: int, kernel: tuple[float, ...]) -> FloatArray:
    """``a`` (rows of ``width`` slots) convolved with ``kernel`` along each row, wrapping
    around midnight."""
    if len(kernel) == 1 or a.size % width:
        return a.astype(np.float64, copy=True)
    rows = a.reshape(-1, width).astype(np.float64)
    half = len(kernel) // 2
    padded = np.concatenate((rows[:, width - half :], rows, rows[:, :half]), axis=1)
    out = np.zeros_like(rows)
    for j, k in enumerate(kernel):
        out += k * padded[:, j : j + width]
    smoothed: FloatArray = out.ravel()
    return smoothed


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    out: FloatArray = np.where(den > 1e-12, num / np.where(den > 1e-12, den, 1.0), np.nan)
    return out


@dataclass(slots=True)
class SeasonalProfile:
    """A fitted profile; keys are ``row * bpd + slot`` (a row is a day type)."""

    bpd: int
    spec_sum: FloatArray
    spec_w: FloatArray
    count: CountArray
    """Readings per key, capped at 2: a key needs two for a leave-one-out value of its own,
    and that is all the count is for (one byte per key instead of eight: a weekly profile of
    every circuit of a hall keeps 672 of them)."""
    slot_sum: FloatArray
    slot_w: FloatArray
    offset: FloatArray
    """Level of each row against the pooled shape (0 for a row never seen)."""
    kernel: tuple[float, ...]
    """The smoothing over neighbouring slots."""
    blend: float
    """Weight of the specific estimate (1 - weight of the pooled one)."""

    @classmethod
    def fit(
        cls,
        y: FloatArray,
        keys: IntArray,
        slots: IntArray,
        w: FloatArray,
        n_keys: int,
        bpd: int,
        *,
        smooth: bool,
        pooled: bool,
    ) -> tuple[SeasonalProfile, FloatArray]:
        """The profile with the smallest leave-one-out error, and its leave-one-out residuals
        (NaN where the history holds no other reading for a value)."""
        valid = np.isfinite(y)
        kv, sv, yv, wv = keys[valid], slots[valid], y[valid], w[valid]
        spec_sum0 = np.bincount(kv, weights=wv * yv, minlength=n_keys).astype(np.float64)
        spec_w0 = np.bincount(kv, weights=wv, minlength=n_keys).astype(np.float64)
        count = np.minimum(np.bincount(kv, minlength=n_keys), 2).astype(np.uint8)
        slot_w0 = np.bincount(sv, weights=wv, minlength=bpd).astype(np.float64)
        n_rows = max(1, n_keys // bpd)
        rows = np.minimum(keys // bpd, n_rows - 1)
        common = valid & (count[keys] >= 2)
        best: tuple[float, SeasonalProfile, FloatArray] | None = None
        for kernel in KERNELS if smooth else KERNELS[:1]:
            slot_w = smooth_rows(slot_w0, bpd, kernel)
            offset = np.zeros(n_rows)
            # Shape and levels are fitted jointly (backfitting the additive model): a plain
            # mean per slot would be biased wherever the day types cover the slots unevenly
            # (a history that starts or ends in the middle of a day: the slots after "now"
            # hold one day fewer of the current day type, so their shape leans to the others).
            for _ in range(_BACKFIT_ROUNDS if n_rows > 1 else 1):
                slot_sum0 = np.bincount(
                    sv, weights=wv * (yv - offset[rows[valid]]), minlength=bpd
                ).astype(np.float64)
                slot_sum = smooth_rows(slot_sum0, bpd, kernel)
                shape = _ratio(slot_sum, slot_w)[slots]
                has = valid & np.isfinite(shape)
                dev = np.where(has, y - shape, 0.0)
                num = np.bincount(rows[has], weights=(w * dev)[has], minlength=n_rows)
                den = np.bincount(rows[has], weights=w[has], minlength=n_rows)
                offset = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
            prof = cls(
                bpd=bpd,
                spec_sum=smooth_rows(spec_sum0, bpd, kernel),
                spec_w=smooth_rows(spec_w0, bpd, kernel),
                count=count,
                slot_sum=slot_sum,
                slot_w=slot_w,
                offset=offset,
                kernel=kernel,
                blend=1.0,
            )
            spec, pool = prof._loo(keys, slots, y, w)
            for blend in BLENDS if pooled else BLENDS[-1:]:
                cand = y - _blend(spec, pool, blend)
                mse = float(np.nanmean(cand[common] ** 2)) if np.any(common) else 0.0
                if best is None or mse < best[0] - 1e-12:
                    chosen = SeasonalProfile(
                        bpd, prof.spec_sum, prof.spec_w, count, prof.slot_sum, prof.slot_w,
                        prof.offset, prof.kernel, blend,
                    )  # fmt: skip
                    best = (mse, chosen, cand)
        assert best is not None
        return best[1], best[2]

    def _loo(
        self, keys: IntArray, slots: IntArray, y: FloatArray, w: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """(specific, pooled) leave-one-out values of the consecutive readings ``y`` (weights
        ``w``): a reading's own day is taken out of every slot the smoothing spreads it to, so
        neither it nor its neighbours of the same day count."""
        ok = np.isfinite(y)
        kern = np.asarray(self.kernel)
        if len(y) < len(kern):
            kern = kern[len(kern) // 2 : len(kern) // 2 + 1]
        own = np.convolve(np.where(ok, w * y, 0.0), kern, mode="same")
        own_w = np.convolve(np.where(ok, w, 0.0), kern, mode="same")
        spec = _ratio(self.spec_sum[keys] - own, self.spec_w[keys] - own_w)
        spec = np.where(self.count[keys] >= 2, spec, np.nan)
        rows = np.minimum(keys // self.bpd, len(self.offset) - 1)
        # The pooled sums hold readings less their day type's level.
        lvl = self.offset[rows]
        own_p = np.convolve(np.where(ok, w * (y - lvl), 0.0), kern, mode="same")
        pool = _ratio(self.slot_sum[slots] - own_p, self.slot_w[slots] - own_w) + lvl
        return spec, pool

    def values(self, keys: IntArray, slots: IntArray) -> FloatArray:
        """Profile values at keys (with their slots)."""
        spec = _ratio(self.spec_sum[keys], self.spec_w[keys])
        rows = np.minimum(keys // self.bpd, len(self.offset) - 1)
        pool = _ratio(self.slot_sum[slots], self.slot_w[slots]) + self.offset[rows]
        return _blend(spec, pool, self.blend)

    def loo_values(
        self, keys: IntArray, slots: IntArray, y: FloatArray, w: FloatArray
    ) -> FloatArray:
        """Leave-one-out values of readings that are part of the fitted history."""
        spec, pool = self._loo(keys, slots, y, w)
        return _blend(spec, pool, self.blend)

    def seen(self, keys: IntArray) -> npt.NDArray[np.bool_]:
        """Whether the history showed the key's day type at all."""
        rows = keys // self.bpd
        per_row = (
            self.spec_w.reshape(-1, self.bpd).sum(axis=1)
            if self.spec_w.size % self.bpd == 0
            else self.spec_w
        )
        out: npt.NDArray[np.bool_] = per_row[np.minimum(rows, len(per_row) - 1)] > 0
        return out


def _blend(spec: FloatArray, pool: FloatArray, blend: float) -> FloatArray:
    """``blend * spec + (1 - blend) * pool``; the pooled value where the specific is missing
    and the specific where the pooled is."""
    mixed = blend * spec + (1.0 - blend) * pool
    out: FloatArray = np.where(np.isfinite(mixed), mixed, np.where(np.isfinite(spec), spec, pool))
    return out
