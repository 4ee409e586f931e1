"""Packaging hook: the Avro schemas in ``schemas/`` go into the package as ``streams/schemas/`` (wheel and sdist).

The repository keeps one copy of the contract at ``schemas/``; an installed ``evgrid`` reads the packaged copy
with ``importlib.resources`` (see ``streams.contracts.codec.default_schema_dir``).
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithSchemas(build_py):
    """``build_py`` that also copies ``schemas/**/*.avsc`` to ``<build>/streams/schemas/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the repository's schemas/
            return
        src = ROOT / "schemas"
        for path in sorted(src.rglob("*.avsc")):
            target = Path(self.build_lib) / "streams" / "schemas" / path.relative_to(src)
            self.mkpath(str(target.parent))
            self.copy_file(str(path), str(target))


setup(cmdclass={"build_py": BuildPyWithSchemas})
