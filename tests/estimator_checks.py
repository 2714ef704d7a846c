"""scikit-learn's estimator checks that need no data, for estimators on images.

``parametrize_with_checks`` runs no common checks for an estimator whose tags
say it does not take 2-D tables (it only warns), so the tests of our
estimators and transformers call these directly: decorate a test taking
``check`` with :data:`data_free_checks`.
"""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import (
    check_estimator_cloneable,
    check_estimator_repr,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

DATA_FREE_CHECKS = (
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_get_params_invariance,
    check_set_params,
    check_estimator_repr,
    check_estimator_cloneable,
)

#: Parametrize a test over the data-free checks (argument ``check``).
data_free_checks = pytest.mark.parametrize(
    "check", DATA_FREE_CHECKS, ids=lambda check: check.__name__
)
