"""pyproject.toml: no deprecated fields; the test tools in the dev extra."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_license_is_an_spdx_string_and_hypothesis_is_a_dev_dependency():
    """``project.license`` as a table made ``pip install`` warn (deprecated since PEP 639)."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "MIT"
    assert any(r.startswith("setuptools>=77") for r in meta["build-system"]["requires"])
    assert any(d.startswith("hypothesis") for d in meta["project"]["optional-dependencies"]["dev"])
