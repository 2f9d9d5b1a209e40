"""Built-in and user domains: shapes, ranges, balance, determinism, caching, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import transferguard as tg
from transferguard.data.domain import Domain, InputSpec
from transferguard.errors import DataError, UnknownNameError

EXPECTED = {
    "mnist": (5000, (1, 28, 28)),
    "uci-digits": (1797, (1, 8, 8)),
    "mnist-m": (5000, (3, 28, 28)),
    "syndigits": (10000, (3, 32, 32)),
}


def test_list_domains_has_the_four_builtins():
    assert set(EXPECTED) <= set(tg.list_domains())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_domain_shapes_ranges_and_balance(name):
    d = tg.load_domain(name)
    n, shape = EXPECTED[name]
    assert len(d) == n and d.shape == shape
    assert d.images.dtype == torch.uint8
    assert d.num_classes == 10 and d.classes == tuple(str(i) for i in range(10))
    assert int(d.images.min()) == 0 or name == "syndigits"
    assert int(d.images.max()) >= 200  # uses the full 0..255 range, not 0..16 or 0..1
    counts = d.class_counts()
    assert counts.min() >= 0.9 * counts.max()  # balanced enough
    # not a constant image set: pixels vary across samples
    assert d.images.float().std() > 20


def test_mnist_is_shuffled_not_sorted_by_label():
    labels = tg.load_domain("mnist").labels[:100]
    assert len(set(labels.tolist())) >= 8


def test_generated_domains_are_deterministic(tmp_path, monkeypatch):
    a = tg.load_domain("syndigits", seed=3, num_samples=40)
    monkeypatch.setenv("TRANSFERGUARD_CACHE", str(tmp_path))  # fresh cache: regenerate
    b = tg.load_domain("syndigits", seed=3, num_samples=40)
    c = tg.load_domain("syndigits", seed=4, num_samples=40)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    m1 = tg.load_domain("mnist-m", seed=1)
    monkeypatch.setenv("TRANSFERGUARD_CACHE", str(tmp_path / "other"))
    m2 = tg.load_domain("mnist-m", seed=1)
    assert torch.equal(m1.images, m2.images)


def test_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERGUARD_CACHE", str(tmp_path))
    a = tg.load_domain("syndigits", seed=0, num_samples=20)
    files = list((tmp_path / "domains").glob("syndigits-*.npz"))
    assert len(files) == 1
    files[0].write_bytes(b"not an npz file")
    b = tg.load_domain("syndigits", seed=0, num_samples=20)
    assert torch.equal(a.images, b.images)


def test_mnist_m_blends_digits_over_colour_patches():
    mm, mn = tg.load_domain("mnist-m"), tg.load_domain("mnist")
    assert torch.equal(mm.labels, mn.labels)
    # the |patch - digit| recipe: colour (channels differ) and the stroke is visible
    x = mm.images[:200].float()
    assert (x[:, 0] - x[:, 1]).abs().mean() > 5


def test_unknown_domain_suggests_close_names():
    with pytest.raises(UnknownNameError, match="Did you mean 'mnist'"):
        tg.load_domain("mnsit")


def test_builtin_rejects_unknown_options():
    with pytest.raises(DataError, match="takes no options"):
        tg.load_domain("mnist", seed=2)


def _write_folder(root, classes=("cat", "dog"), per_class=3, size=(20, 12)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.png")


def test_folder_domain(tmp_path):
    _write_folder(tmp_path / "office")
    d = tg.load_domain(f"folder:{tmp_path / 'office'}", size=16)
    assert len(d) == 6 and d.shape == (3, 16, 16) and d.classes == ("cat", "dog")
    assert d.class_counts().tolist() == [3, 3]


def test_empty_folder_names_the_layout(tmp_path):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        tg.load_domain(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(DataError, match="does not exist"):
        tg.load_domain(f"folder:{tmp_path / 'missing'}")


def test_torchvision_without_download_says_how_to_fetch(tmp_path):
    with pytest.raises(DataError, match="download=True"):
        tg.load_domain("torchvision:USPS", root=tmp_path)
    with pytest.raises(DataError, match="no data set"):
        tg.load_domain("torchvision:NoSuchSet", root=tmp_path)


def test_domain_validation_messages():
    imgs = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(DataError, match="uint8"):
        Domain("x", imgs.float(), torch.zeros(4), ("a", "b"))
    with pytest.raises(DataError, match="empty"):
        Domain("x", imgs[:0], torch.zeros(0), ("a", "b"))
    with pytest.raises(DataError, match="labels span"):
        Domain("x", imgs, torch.tensor([0, 1, 2, 0]), ("a", "b"))
    with pytest.raises(DataError, match="one integer label per image"):
        Domain("x", imgs, torch.zeros(3), ("a", "b"))


def test_convert_channels_and_size():
    d = Domain("x", torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8), torch.zeros(5),
               ("a", "b"))
    rgb = d.convert(InputSpec(3, 32))
    assert rgb.shape == (3, 32, 32)
    assert torch.equal(rgb.images[:, 0], rgb.images[:, 1])  # grey replicated
    back = rgb.convert(InputSpec(1, 32))
    assert back.shape == (1, 32, 32)
    assert (back.images.float() - rgb.images[:, :1].float()).abs().max() <= 1


def test_input_spec_validation():
    with pytest.raises(DataError, match="channels"):
        InputSpec(channels=2)
    with pytest.raises(DataError, match="one value per channel"):
        InputSpec(3, 32, mean=(0.5, 0.5))
    x = InputSpec(3, 8).normalize(torch.full((1, 3, 8, 8), 255, dtype=torch.uint8))
    assert torch.allclose(x, torch.ones_like(x))


def test_torchvision_data_with_grey_and_colour_images_loads_as_colour():
    from PIL import Image

    from transferguard.data.user import _dataset_arrays

    ds = [(Image.new("L", (8, 8), 100), 0), (Image.new("RGB", (8, 8), (1, 2, 3)), 1)]
    images, labels = _dataset_arrays(ds, 8)
    assert images.shape == (2, 3, 8, 8) and labels.tolist() == [0, 1]
    assert images[0].eq(100).all() and images[1, :, 0, 0].tolist() == [1, 2, 3]
