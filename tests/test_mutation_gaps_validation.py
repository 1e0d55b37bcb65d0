"""Gaps found by mutation testing of the checks in gdcore/optim.py and gdcore/_api.py: two
refusals that nothing in the suite asked for (SPEC §3 defers to torch.optim, whose SGD refuses
Nesterov momentum with dampening; SPEC §1 holds b at 0 when fit_intercept=False)."""

import numpy as np
import pytest

import gdcore
from gdcore.optim import SGD

X2 = np.array([[1.0], [3.0]])
Y2 = np.array([1.0, 2.0])


@pytest.mark.parametrize("dampening", [0.1, -0.5, 0.9])
def test_nesterov_refuses_dampening(dampening):
    """torch.optim.SGD: 'Nesterov momentum requires a momentum and zero dampening'.  The
    update written for nesterov (g + μ·buf) is torch's only with dampening 0."""
    with pytest.raises(ValueError, match="nesterov=True requires momentum > 0 and dampening = 0"):
        SGD(lr=0.1, momentum=0.9, dampening=dampening, nesterov=True)
    # nor can set_params reach it from a valid optimizer
    opt = SGD(lr=0.1, momentum=0.9, nesterov=True)
    with pytest.raises(ValueError, match="dampening = 0"):
        opt.set_params(dampening=dampening)
    assert opt == SGD(lr=0.1, momentum=0.9, nesterov=True)


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("first_intercept", [True, False])
def test_a_continuation_keeps_fit_intercept(first_intercept, backend):
    """init=result continues that fit: with the other fit_intercept it is refused (a fitted b
    continued with fit_intercept=False would be carried, never updated, though SPEC §1 holds
    b at 0; the other way, b would start moving in a fit that promised none)."""
    first = gdcore.fit(X2, Y2, optimizer="sgd", lr=0.1, epochs=3, tol=None,
                       fit_intercept=first_intercept, backend=backend)
    assert (first.intercept != 0.0) is first_intercept
    before = (first.coef.copy(), first.intercept, first.n_epochs)
    with pytest.raises(ValueError, match=f"fit_intercept={first_intercept}, this fit has "
                                         f"fit_intercept={not first_intercept}"):
        gdcore.fit(X2, Y2, optimizer="sgd", lr=0.1, epochs=3, tol=None, init=first,
                   fit_intercept=not first_intercept, backend=backend)
    np.testing.assert_array_equal(first.coef, before[0])
    assert (first.intercept, first.n_epochs) == before[1:]
