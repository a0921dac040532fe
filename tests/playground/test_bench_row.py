"""The playground's benchmark row: the case is registered as one run, and its extras become the
notes and the target rows (30 frames/s, a knob change within 200 ms)."""
from __future__ import annotations

from deltaprop.bench import _registry, runner, targets


def _report(extra):
    item = {"lib": "deltaprop", "case": "playground", "status": "ok", "value": 1 / 40, "unit": "s",
            "rounds": [1 / 40], "median": 1 / 40, "extra": extra}
    return {"cases": {"playground": {"libraries": {"deltaprop": item}}}}, item


def test_the_case_is_registered_as_one_run_of_deltaprop():
    assert "playground" in _registry.CASES and "playground" in _registry.ONE_RUN
    assert _registry.APPLIES["playground"] == ["deltaprop"]


def test_extras_give_notes_and_targets():
    extra = {"frames_per_s": 41.2, "browser_frames_per_s": 27.0, "knob_ms_median": 31.0, "knob_ms_max": 212.0}
    report, item = _report(extra)
    rows = {what: (limit, measured, met) for what, limit, measured, met in targets.evaluate(report)}
    assert rows["playground: steps + frames per second, 2-8-8-1 on 500 points (headless client)"] == (">= 30", "41", True)
    assert rows["playground: steps + redraws per second in Chromium, 2-8-8-1 on 500 points"] == (">= 30", "27", False)
    assert rows["playground: a knob change visible (slowest of the changes)"] == ("<= 200 ms", "212 ms", False)
    notes = runner._notes("playground", "deltaprop", item, None)
    assert notes.startswith("41 steps + frames/s (27 drawn/s in Chromium); a knob change in the next frame after "
                            "31 ms (median), 212 ms at most")
