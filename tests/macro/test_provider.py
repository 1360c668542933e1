"""Provider protocol, tensor checks, registry and the real providers on simple images."""

from __future__ import annotations

import numpy as np
import pytest

from macro.provider import (
    ConstantProvider,
    ConstitutiveProvider,
    check_tensors,
    evaluate_provider,
    get_provider,
)
from magnetohom.errors import InputError


def test_check_tensors_accepts_spd_and_symmetrises():
    mu = np.array([[[2.0, 0.5], [0.5 + 1e-12, 1.0]]])
    out = check_tensors(mu, dim=2)
    assert out.dtype == np.float64 and out.shape == (1, 2, 2)
    assert np.array_equal(out, out.transpose(0, 2, 1))


@pytest.mark.parametrize(
    ("mu", "word"),
    [
        (np.array([[[1.0, 2.0], [2.0, 1.0]]]), "positive definite"),
        (np.array([[[1.0, 0.5], [0.0, 1.0]]]), "non-symmetric"),
        (np.array([[[np.nan, 0.0], [0.0, 1.0]]]), "non-finite"),
        (np.ones((2, 3, 3)), "shape"),
    ],
)
def test_check_tensors_rejects(mu, word):
    with pytest.raises(InputError, match=word) as info:
        check_tensors(mu, dim=2, provider="provider 'x'")
    assert "\n" not in str(info.value)


def test_non_spd_provider_names_provider_and_sample():
    class Bad:
        dim = 2
        name = "bad"
        resolution = None
        geometry: dict = {}  # noqa: RUF012
        mu_phases = None
        n_fallback = 0

        def warm_up(self, shape=None):
            return 0.0

        def __call__(self, images):
            out = np.tile(np.eye(2), (len(images), 1, 1))
            out[1] = [[1.0, 3.0], [3.0, 1.0]]
            return out

    assert isinstance(Bad(), ConstitutiveProvider)
    with pytest.raises(InputError, match=r"provider 'bad'.*sample 1"):
        evaluate_provider(Bad(), np.zeros((3, 8, 8), bool), dim=2)


def test_incomplete_provider_is_refused_with_its_missing_members():
    from macro.provider import check_provider

    class Partial:
        dim = 2
        name = "partial"

        def __call__(self, images):
            return np.tile(np.eye(2), (len(images), 1, 1))

    assert not isinstance(Partial(), ConstitutiveProvider)
    with pytest.raises(InputError, match="lacks resolution, geometry, mu_phases, n_fallback, "
                       "warm_up of the ConstitutiveProvider protocol"):  # fmt: skip
        check_provider(Partial())


def test_every_registered_provider_implements_the_protocol():
    from macro.provider import check_provider

    for name in ("fe", "analytic"):
        p = check_provider(get_provider(name, mu_matrix=2.0, mu_inclusion=50.0, dim=2))
        assert p.mu_phases == (2.0, 50.0) and p.n_fallback == 0 and p.resolution is None


def test_provider_dimension_must_match():
    with pytest.raises(InputError, match="3D but the macro problem is 2D"):
        evaluate_provider(ConstantProvider(1.0, dim=3), np.zeros((1, 8, 8), bool), dim=2)


def test_unknown_provider_lists_known():
    with pytest.raises(InputError, match="known: fe, analytic, cnn, general, hybrid"):
        get_provider("magic")


def test_fe_and_analytic_agree_on_homogeneous_material():
    """All-matrix images -> mu_m I, all-inclusion images -> mu_i I, from fe and analytic."""
    images = np.zeros((2, 16, 16), bool)
    images[1] = True
    for name in ("fe", "analytic"):
        p = get_provider(name, mu_matrix=2.0, mu_inclusion=50.0, dim=2)
        mu = evaluate_provider(p, images, dim=2)
        assert p.name == name
        assert np.allclose(mu[0], 2.0 * np.eye(2), rtol=1e-8)
        assert np.allclose(mu[1], 50.0 * np.eye(2), rtol=1e-8)


def test_fe_provider_is_within_hashin_shtrikman_bounds():
    from micro.analytic import hashin_shtrikman
    from micro.generate import generate_sve

    img = generate_sve(size=32, volume_fraction=0.3, radius=3.0, rng=4).image
    mu = get_provider("fe")(img[None])[0]
    f = img.mean()
    lower, upper = hashin_shtrikman(f, 1.0, 250.0, dim=2)
    assert lower * 0.98 < np.linalg.eigvalsh(mu).min() and np.linalg.eigvalsh(mu).max() < upper
    assert get_provider("analytic")(img[None])[0] == pytest.approx(lower * np.eye(2))


def test_import_macro_does_not_import_micro_or_surrogate():
    import subprocess
    import sys

    code = (
        "import sys, macro, macro.provider, macro.material, macro.cli; "
        "bad = [m for m in ('micro', 'surrogate', 'dolfinx', 'tensorflow') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
