"""`import deltaprop` loads only what every program needs; the rest loads on first use, and every
public name (DESIGN.md's) still resolves to the same object as before."""
from __future__ import annotations

import json
import subprocess
import sys
import importlib
import types

import pytest

import deltaprop as dp

# Modules that `import deltaprop` must not load (each loads on first use), and heavy or optional
# third-party packages it must never import.
LAZY = ["deltaprop.compiler", "deltaprop.io", "deltaprop.plot", "deltaprop.optim", "deltaprop.data",
        "deltaprop.explain", "deltaprop.distributed", "deltaprop.onnx", "deltaprop.nn.parallel",
        "deltaprop.train", "deltaprop.run", "deltaprop.cli", "deltaprop.bench"]
NEVER = ["numpy.random", "safetensors", "torch", "mpi4py", "onnx", "matplotlib", "sklearn", "scipy"]


def _fresh(code: str):
    """Run code in a new interpreter (this process has loaded everything); return what it prints as JSON."""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_deltaprop_loads_no_lazy_module():
    loaded = _fresh("import sys, json, deltaprop; print(json.dumps(sorted(sys.modules)))")
    assert [m for m in LAZY + NEVER if m in loaded] == []
    assert "deltaprop.nn" in loaded and "deltaprop.tensor" in loaded  # (what every program uses stays eager)


def test_lazy_names_resolve_to_their_modules_objects():
    import deltaprop.compiler  # noqa: F401
    import deltaprop.io  # noqa: F401
    import deltaprop.plot  # noqa: F401
    assert dp.compile is sys.modules["deltaprop.compiler"].compile and callable(dp.compile)
    for name in ["save", "load", "save_checkpoint", "load_checkpoint", "load_metadata"]:
        assert getattr(dp, name) is getattr(sys.modules["deltaprop.io"], name)
    assert dp.plot_history is sys.modules["deltaprop.plot"].plot_history
    for name in ["io", "plot", "optim", "data", "explain", "distributed", "onnx"]:
        assert isinstance(getattr(dp, name), types.ModuleType) and getattr(dp, name).__name__ == f"deltaprop.{name}"
    assert dp.nn.parallel.DistributedDataParallel.__module__ == "deltaprop.nn.parallel"
    from deltaprop import compile, save  # (from-imports go through the same lookup)
    assert (compile, save) == (dp.compile, dp.save)
    assert {"compile", "save", "io", "optim", "plot_history", "Tensor"} <= set(dir(dp))
    with pytest.raises(AttributeError, match="module 'deltaprop' has no attribute 'no_such_name'"):
        dp.no_such_name


@pytest.mark.parametrize("first", ["import deltaprop.optim", "import deltaprop.train",
                                   "from deltaprop.compiler import effect", "import deltaprop.compiler"])
def test_dp_compile_stays_the_function_whichever_import_loads_its_module_first(first):
    # The implementation lives in deltaprop.compiler, a name of its own: loading it (the import
    # system then sets dp.compiler) leaves dp.compile the function, with no trick in __init__.py.
    got = _fresh(f"{first}\nimport json, deltaprop as dp\n"
                 "print(json.dumps([type(dp.compile).__name__, dp.compile.__module__, type(dp).__name__]))")
    assert got == ["function", "deltaprop.compiler", "module"]


def test_no_module_is_named_deltaprop_compile():
    import importlib.util
    assert importlib.util.find_spec("deltaprop.compiler") is not None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("deltaprop.compile")
    assert callable(dp.compile) and dp.compile.__module__ == "deltaprop.compiler"


def test_the_default_generator_is_made_on_first_use_and_seeded_as_before():
    got = _fresh("import sys, json, deltaprop as dp\n"
                 "before = 'numpy.random' in sys.modules\n"
                 "a = dp.randn(3).tolist(); dp.manual_seed(5); b = dp.randn(3).tolist()\n"
                 "print(json.dumps([before, 'numpy.random' in sys.modules, a != b, b]))")
    import numpy as np
    assert got[:3] == [False, True, True]
    assert got[3] == np.random.default_rng(5).standard_normal(3).astype(np.float32).tolist()


DESIGN_NAMES = """tensor zeros ones full arange eye randn rand zeros_like ones_like from_numpy manual_seed
set_default_dtype get_default_dtype Tensor no_grad enable_grad is_grad_enabled detect_anomaly grad
value_and_grad vjp jvp jacobian hessian gradcheck GradcheckError Function compile save load save_checkpoint
load_checkpoint load_metadata plot_history exp sin sum matmul nn optim data explain""".split()


def test_every_name_design_md_lists_resolves():
    missing = [n for n in DESIGN_NAMES if getattr(dp, n, None) is None]
    assert missing == []
    assert dp.nn.functional.cross_entropy and dp.optim.lr_scheduler.StepLR and dp.data.DataLoader
    assert dp.explain.trace and dp.nn.utils.clip_grad_norm_ and dp.nn.init.xavier_uniform_
