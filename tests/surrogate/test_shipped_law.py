"""The shipped learned convex law (surrogate/laws/, the choke demo's default): it loads,
is convex with an SPD tangent on real microstructures and random fields, and its small-field
limit is the linear mu* of the cell problem."""

from __future__ import annotations

import json

import numpy as np
import pytest

from magnetohom.errors import InputError
from micro.phase_laws import MU0
from surrogate.convex_law import DEFAULT_LAW, LAWS_DIR, available_laws, load_law


def _images(n: int, rng) -> np.ndarray:
    from micro.generate import generate_sve

    vfs = rng.uniform(0.22, 0.43, n)
    return np.stack([generate_sve(dim=2, size=32, volume_fraction=float(v), radius=2.5,
                                  rng=rng).image for v in vfs])  # fmt: skip


def test_shipped_law_is_listed_with_provenance():
    assert DEFAULT_LAW in available_laws()
    d = LAWS_DIR / DEFAULT_LAW
    assert (d / "PROVENANCE.md").is_file()
    meta = json.loads((d / "metadata.json").read_text())
    assert meta["name"] == DEFAULT_LAW and "command" in meta
    assert not any(str(v).startswith("/") for v in meta.values())
    with pytest.raises(InputError, match="no learned law"):
        load_law("no-such-law")


def test_shipped_law_convex_spd_and_small_field_limit():
    from micro.nonlinear import describe_cells

    law = load_law()
    rng = np.random.default_rng(7)
    cells = describe_cells(_images(6, rng), law.laws)
    knee = law.knee_fields(cells)
    n = 600
    idx = rng.integers(0, len(cells), n)
    sub = cells.take(idx)
    scale = np.exp(rng.uniform(np.log(1e-3), np.log(30.0), n))
    H = rng.normal(size=(n, 2)) * (scale * knee[idx])[:, None]
    ev = law.evaluate(H, sub)
    eig = np.linalg.eigvalsh(ev.tangent / MU0)
    assert eig.min() > 1 - 1e-9  # SPD, never below vacuum
    assert np.all(np.isfinite(ev.B)) and np.all(np.einsum("ki,ki->k", ev.B, H) >= 0)
    zero = law.evaluate(np.zeros((len(cells), 2)), cells)
    np.testing.assert_allclose(zero.tangent / MU0, cells.mu_lin, rtol=1e-8, atol=1e-8)
    small = law.evaluate(1e-4 * knee[:, None] * np.array([[1.0, 0.5]]), cells)
    lin = MU0 * np.einsum("kij,kj->ki", cells.mu_lin, 1e-4 * knee[:, None] * [1.0, 0.5])
    np.testing.assert_allclose(small.B, lin, rtol=1e-4)
    t = np.linspace(0, 1, 31)
    for i in range(len(cells)):
        a, b = rng.normal(size=(2, 2)) * 4 * knee[i]
        Hl = a + t[:, None] * (b - a)
        w = law.evaluate(Hl, cells.take(np.full(t.size, i))).coenergy
        assert np.all(w[:-2] - 2 * w[1:-1] + w[2:] >= -1e-10 * np.abs(w).max())


def test_shipped_law_knows_its_training_range():
    """Microstructures like its training data are familiar; a percolating stripe of the strong
    phase (a laminate: the law extrapolates there) is flagged."""
    from micro.nonlinear import describe_cells

    law = load_law()
    assert law._feat_min is not None and law._feat_max is not None
    rng = np.random.default_rng(11)
    stripe = np.zeros((32, 32), dtype=bool)
    stripe[:, 8:20] = True
    cells = describe_cells(np.concatenate([_images(4, rng), stripe[None]]), law.laws)
    np.testing.assert_array_equal(law.familiar(cells), [True] * 4 + [False])
