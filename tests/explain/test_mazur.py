"""deltaprop explain mazur: every number against mazur.json's recomputed values."""
import numpy as np
import pytest

from deltaprop.explain.mazur import reference, walkthrough

REF = reference()


@pytest.fixture(scope="module")
def run():
    return walkthrough(10000)


def test_every_reference_value_is_reproduced(run):
    missing = [k for k in REF["values"] if k not in run.values]
    assert not missing
    for key, entry in REF["values"].items():
        # the reference holds 9 significant digits: ours, printed the same way, must be that figure
        assert float("%.9g" % run.values[key]) == pytest.approx(entry["recomputed"], rel=1e-9, abs=1e-15), key


def test_float64_values(run):
    f = REF["float64"]
    t = run.trace
    np.testing.assert_allclose(t.layers[0].out[0], f["out_h"], rtol=1e-12)
    np.testing.assert_allclose(t.layers[1].delta[0], f["delta_o (dE/dnet_o)"], rtol=1e-12)
    np.testing.assert_allclose(t.layers[0].delta[0], f["delta_h (dE/dnet_h)"], rtol=1e-12)
    np.testing.assert_allclose(t.updated["2.weight"], f["W_out after 1 update"], rtol=1e-12)
    np.testing.assert_allclose(t.updated["0.weight"], f["W_hidden after 1 update"], rtol=1e-12)
    assert run.values["E_total after 1 update"] == pytest.approx(f["E_total after 1 update"], rel=1e-12)
    assert run.values["E_total after 10000 updates"] == pytest.approx(f["E_total after 10000 updates"], rel=1e-9)
    np.testing.assert_allclose([run.values["out_o1 after 10000 updates"], run.values["out_o2 after 10000 updates"]],
                               f["outputs after 10000 updates"], rtol=1e-10)


def test_text_has_the_figures_and_says_where_the_post_differs(run):
    text = run.text
    for fig in ("0.298371109", "0.0821670406", "0.74136507 × 0.186815602 × 0.593269992 = 0.0821670406",
                "0.35891648", "0.149780716", "0.291027774", "3.51018778e-05", "0.0159136204", "0.984064274",
                "0.593269992", "0.75136507", "0.772928465", "0.274811083", "0.0235600256", "0.138498562",
                "0.0363503064", "0.241300709", "0.000438567734", "0.408666186", "0.51130127", "0.561370121",
                "0.199561432", "0.249751144", "0.299502287"):
        assert fig in text, fig
    for key, entry in REF["values"].items():
        if entry["status"] == "differs":
            lines = [l for l in text.splitlines() if f"the post prints {entry['published']}" in l]
            assert len(lines) == 1, key
    assert "the optimizer's weights equal the w+ above: yes" in text


def test_short_run_does_not_touch_the_10000_figures():
    w = walkthrough(1)
    assert w.values["E_total after 1 update"] == pytest.approx(REF["float64"]["E_total after 1 update"], rel=1e-12)
    assert "10,000" not in w.text
