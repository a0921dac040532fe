"""A griffe extension for the API reference (mkdocs.yml loads it).

The reference is built by inspecting the imported modules (many ops are made by factories,
which static analysis cannot see). Inspection gives an attribute whose value is a plain object
(a dataclass field's default, a tuple of names) the docstring of that object's type ("str(object='')
-> str ..."): such docstrings are dropped here, so those attributes are not listed as if documented.
"""
from __future__ import annotations

import inspect

import griffe


class DropTypeDocstrings(griffe.Extension):
    """Remove an inspected attribute's docstring when it is only its value's type's docstring, and
    the interpreter's own slots (__weakref__, __dict__) that inspection lists as class members."""

    def on_class_members(self, *, node, cls, agent, **kwargs) -> None:
        for name in ("__weakref__", "__dict__"):
            if name in cls.members:
                cls.del_member(name)

    def on_attribute_instance(self, *, node, attr, agent, **kwargs) -> None:
        obj = getattr(node, "obj", None)
        if attr.docstring is None or obj is None or isinstance(obj, type):
            return
        type_doc = type(obj).__doc__  # (a descriptor, not a string, for some extension types)
        if isinstance(type_doc, str) and attr.docstring.value.strip() in (type_doc.strip(), inspect.cleandoc(type_doc)):
            attr.docstring = None
