"""The documentation: every public name has a docstring, and the docs site builds strictly.

* Public names are those in the ``__all__`` of ``deltaprop`` and of every public submodule
  (found by walking the package; modules whose name starts with ``_`` are private). A module
  without ``__all__`` (the package itself) contributes the deltaprop functions and classes it
  offers. For a public class its public methods and properties count too, including those it
  inherits from deltaprop base classes.
* A module that needs an optional dependency (torch, mpi4py, onnx, ...) is skipped only when
  its import fails for that missing dependency; any other import error fails the test.
* ``mkdocs build --strict`` runs on the repository's ``mkdocs.yml`` into a temporary folder.
  Without mkdocs (``pip install -e '.[docs]'``) the test is skipped with the reason, except
  under CI=true, where it fails.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import deltaprop

ROOT = Path(__file__).resolve().parents[1]

# Third-party packages some deltaprop modules import at module level; a module whose import
# fails because one of these is missing is an optional part of the library, skipped here.
OPTIONAL = {"torch", "mpi4py", "onnx", "onnxruntime", "sklearn", "matplotlib", "autograd", "mygrad",
            "dezero", "micrograd", "scipy", "playwright", "safetensors", "jax", "tinygrad"}


def _missing_optional(exc: ImportError) -> str | None:
    """The optional package whose absence made this import fail, or None (a real error). Modules
    re-raise with a message of their own (``raise ImportError("... pip install x") from None``):
    the original error is then the exception's context."""
    e = exc
    while e is not None:
        name = (getattr(e, "name", None) or "").split(".")[0]
        if name in OPTIONAL:
            return name
        e = e.__cause__ or e.__context__
    for dep in sorted(OPTIONAL):
        if dep in str(exc) and importlib.util.find_spec(dep) is None:
            return dep
    return None


def _public_modules():
    """(name, module) for deltaprop and every public submodule; skipped optional ones listed."""
    found, skipped = [("deltaprop", deltaprop)], []
    for info in pkgutil.walk_packages(deltaprop.__path__, "deltaprop."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError as exc:
            missing = _missing_optional(exc)
            if missing is None:
                raise
            skipped.append((info.name, missing))
            continue
        found.append((info.name, module))
    return found, skipped


def _module_names(name, module):
    if hasattr(module, "__all__"):
        return list(module.__all__)
    # No __all__: the public functions and classes it defines or re-exports from deltaprop (for
    # the package itself: everything `dp.<name>` offers, dp.exp, dp.Tensor, ...), not what it
    # imports from elsewhere.
    return [n for n, v in vars(module).items()
            if not n.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v))
            and (getattr(v, "__module__", None) or "").startswith("deltaprop")]


def _has_doc(obj):
    doc = inspect.getdoc(obj) if not isinstance(obj, property) else obj.__doc__
    return bool(doc and doc.strip())


def _own_doc(cls, name, member):
    """Whether a method's docstring is its own, or one inherited from a deltaprop base class."""
    if isinstance(member, (staticmethod, classmethod)):
        member = member.__func__
    if isinstance(member, property):
        return _has_doc(member)
    if not callable(member):
        return True  # class attributes (constants) carry no docstring of their own
    if member.__doc__ and member.__doc__.strip():
        return True
    # An override without a docstring is fine when the method it overrides has one (inspect
    # shows the inherited one, as mkdocstrings does).
    for base in cls.__mro__[1:]:
        if name in vars(base):
            return _has_doc(getattr(base, name))
    return False


def _missing_docstrings():
    modules, _ = _public_modules()
    missing, seen, seen_members = [], set(), set()
    for modname, module in modules:
        if not _has_doc(module):
            missing.append(f"module {modname}")
        for name in _module_names(modname, module):
            obj = getattr(module, name, None)
            if obj is None:
                missing.append(f"{modname}.{name} (listed in __all__ but missing)")
                continue
            if inspect.ismodule(obj) or not (inspect.isfunction(obj) or inspect.isclass(obj)
                                             or inspect.isbuiltin(obj) or callable(obj)):
                continue  # submodules are checked on their own; constants carry no docstring
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            qual = f"{getattr(obj, '__module__', modname)}.{getattr(obj, '__qualname__', name)}"
            if not _has_doc(obj) or (inspect.isclass(obj) and not (obj.__doc__ or "").strip()):
                missing.append(qual)
            if inspect.isclass(obj):
                # its public methods and properties, also those it inherits from a deltaprop base
                # (a private base's methods are public through this class)
                for klass in obj.__mro__:
                    if not (getattr(klass, "__module__", "") or "").startswith("deltaprop"):
                        continue
                    for mname, member in vars(klass).items():
                        if mname.startswith("_") or (id(klass), mname) in seen_members:
                            continue
                        seen_members.add((id(klass), mname))
                        if not _own_doc(klass, mname, member):
                            missing.append(f"{klass.__module__}.{klass.__qualname__}.{mname}")
    return missing


def test_public_modules_import_or_lack_only_an_optional_dependency():
    modules, skipped = _public_modules()
    names = {n for n, _ in modules}
    # The core of the library never needs an optional dependency.
    for core in ("deltaprop", "deltaprop.nn", "deltaprop.nn.functional", "deltaprop.optim",
                 "deltaprop.data", "deltaprop.explain", "deltaprop.io"):
        assert core in names, f"{core} did not import (skipped for {dict(skipped).get(core)})"


def test_a_module_missing_only_an_optional_dependency_is_skipped(monkeypatch):
    # Without scikit-learn, deltaprop.sklearn cannot import: the walk skips it (and names the
    # package) instead of failing; every other module is still checked.
    for name in ["sklearn"] + [m for m in sys.modules if m.startswith("sklearn.")]:
        monkeypatch.setitem(sys.modules, name, None)  # makes `import sklearn(.x)` raise ImportError
    for name in [m for m in sys.modules if m == "deltaprop.sklearn" or m.startswith("deltaprop.bench.lib_sklearn")]:
        monkeypatch.delitem(sys.modules, name)
    modules, skipped = _public_modules()
    assert ("deltaprop.sklearn", "sklearn") in skipped
    assert "deltaprop.sklearn" not in {n for n, _ in modules}
    assert "deltaprop.nn.functional" in {n for n, _ in modules}


def test_every_public_name_has_a_docstring():
    missing = _missing_docstrings()
    assert not missing, (f"{len(missing)} public name(s) without a docstring (write one or two lines "
                         "saying what, naming the math where there is some):\n  " + "\n  ".join(missing))


def test_the_docstring_check_catches_a_missing_docstring(monkeypatch):
    # The check above must be able to fail: a public function and a public method without
    # docstrings in a public module are reported.
    import deltaprop.nn.init as init

    def undocumented(x):
        return x

    class Undocumented:
        """A class with a documented body but one undocumented method."""

        def method(self):
            return 1

    undocumented.__module__ = Undocumented.__module__ = "deltaprop.nn.init"
    monkeypatch.setattr(init, "undocumented", undocumented, raising=False)
    monkeypatch.setattr(init, "Undocumented", Undocumented, raising=False)
    monkeypatch.setattr(init, "__all__", [*init.__all__, "undocumented", "Undocumented"])
    missing = _missing_docstrings()
    assert any(m.endswith("undocumented") for m in missing), missing
    assert any(m.endswith("Undocumented.method") for m in missing), missing


def _mkdocs_unavailable(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"the docs build cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def test_mkdocs_build_strict(tmp_path):
    try:
        import mkdocs  # noqa: F401
        import material  # noqa: F401
        import mkdocstrings  # noqa: F401
        import mkdocs_jupyter  # noqa: F401
    except ImportError as exc:
        _mkdocs_unavailable(f"{exc.name} is not installed; pip install -e '.[docs]' installs it")
    env = dict(os.environ)
    # mkdocstrings reads the sources under src/ (mkdocs.yml: paths: [src]); the build must
    # document this checkout, not an installed copy.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.pop("NO_COLOR", None)
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site"), "--config-file", str(ROOT / "mkdocs.yml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    site = tmp_path / "site"
    assert (site / "index.html").is_file()
    # The API reference was generated from the docstrings (not an empty page).
    api = (site / "api" / "autograd" / "index.html").read_text(encoding="utf-8")
    assert "value_and_grad" in api and "backward" in api
    # The benchmark page includes benchmarks/RESULTS.md as it is now (pymdownx.snippets).
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    title = results.splitlines()[0].lstrip("# ").strip()
    assert title in (site / "benchmarks" / "index.html").read_text(encoding="utf-8")
    # The step-by-step notebook, when there is one, is rendered and linked (docs/_ext/hooks.py).
    if (ROOT / "docs" / "notebooks" / "backprop-step-by-step.ipynb").is_file():
        assert (site / "notebooks" / "backprop-step-by-step" / "index.html").is_file()
        assert "backprop-step-by-step" in (site / "step-by-step" / "index.html").read_text(encoding="utf-8")
