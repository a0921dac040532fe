"""Forward vs reverse mode: pass counts and agreement (no timing asserts)."""

import deltaprop as dp
from deltaprop.explain.modes import format_modes, make_function


def test_rows_for_1_10_100():
    rows = dp.explain.modes()
    assert [(r.n, r.m) for r in rows] == [(n, m) for n in (1, 10, 100) for m in (1, 10, 100)]
    for r in rows:
        assert r.jvp_passes == r.n
        assert r.vjp_passes == r.m
        assert r.agree and r.max_abs_diff < 1e-10
        assert r.fwd_seconds >= 0 and r.rev_seconds >= 0
        assert r.fewer_passes == ("fwd" if r.n < r.m else "rev" if r.m < r.n else "tie")
    text = format_modes(rows)
    assert "JVP passes" in text and "VJP passes" in text
    assert len(text.splitlines()) >= 11


def test_function_is_seeded_and_has_the_right_shape():
    import numpy as np

    f = make_function(3, 5, seed=1)
    x = dp.tensor(np.ones(3))
    assert f(x).shape == (5,)
    np.testing.assert_array_equal(f(x).numpy(), make_function(3, 5, seed=1)(x).numpy())
    J = dp.jacobian(f)(np.ones(3))
    assert J.shape == (5, 3)
