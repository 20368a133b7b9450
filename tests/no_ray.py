"""Python source that makes `import ray` fail in a subprocess, to test what works without the Ray extra."""

import textwrap

BLOCK_RAY = textwrap.dedent("""
    import sys, importlib.abc
    class NoRay(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "ray" or name.startswith("ray."):
                raise ImportError(f"No module named {name!r} (blocked by the test)", name=name)
    sys.meta_path.insert(0, NoRay())
""")
