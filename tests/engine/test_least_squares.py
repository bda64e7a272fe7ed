"""The forecaster's least squares against statsmodels, the library it stands in for.

``engine/forecast.py`` fits by QR in numpy instead of importing statsmodels in Home Assistant
(the import alone cost ~65 MB there, docs/scaling.md). statsmodels stays the reference: these
tests hold the hand-written fit to its ``OLS(...).fit(method="qr")`` numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.regression.linear_model import OLS

from custom_components.datacenter_power.engine.forecast import _ols_qr


@pytest.mark.parametrize("seed", range(40))
def test_coefficients_and_covariance_equal_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(12, 400))
    k = int(rng.integers(1, 11))
    x = rng.normal(size=(n, k))
    x[:, 0] = 1.0  # a level, as every design of the forecaster has
    y = x @ rng.normal(size=k) + rng.normal(scale=rng.uniform(0.01, 3.0), size=n)

    beta, cov = _ols_qr(y, x)
    reference = OLS(y, x).fit(method="qr")

    np.testing.assert_allclose(beta, reference.params, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cov, reference.cov_params(), rtol=1e-9, atol=1e-14)


def test_as_many_columns_as_rows_gives_the_exact_fit_and_no_covariance() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4, 4))
    y = rng.normal(size=4)

    beta, cov = _ols_qr(y, x)

    np.testing.assert_allclose(x @ beta, y, atol=1e-9)
    np.testing.assert_allclose(beta, OLS(y, x).fit(method="qr").params, rtol=1e-9)
    assert not cov.any()
