"""Package layout pyproject.toml cannot say: the suites and fixtures travel in the wheel under harness/_data.

``robot/`` and ``fixtures/`` stay at the top of the checkout, but a wheel must not install ``robot/`` as a
top-level package (that name is Robot Framework's). Each of their folders becomes a data-only package
``harness._data.robot…``/``harness._data.fixtures…`` mapped onto the checkout folder; ``harness.fixtures``
finds them there once installed. Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).resolve().parent
DATA_PACKAGE = "harness._data"  # harness.fixtures.PACKAGED_DATA names the same folder
DATA_FOLDERS = ("robot", "fixtures")
SKIPPED = {"__pycache__"}


def data_packages() -> dict[str, str]:
    """Dotted package name → checkout folder, for every folder under the data folders."""
    mapping = {}
    for top in DATA_FOLDERS:
        for folder in [HERE / top, *sorted(p for p in (HERE / top).rglob("*") if p.is_dir())]:
            relative = folder.relative_to(HERE)
            if SKIPPED.intersection(relative.parts) or any(part.startswith(".") for part in relative.parts):
                continue
            mapping[".".join([DATA_PACKAGE, *relative.parts])] = relative.as_posix()
    return mapping


code = find_namespace_packages(include=["harness*", "devices*"], exclude=["*__pycache__*"])
data = data_packages()
setup(
    packages=code + list(data),
    package_dir=data,
    package_data={"": ["*.toml"], **{name: ["*"] for name in data}},
)
