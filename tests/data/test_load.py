import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import make_idx_folder, write_idx

from jetsynth.data.dataset import DataSpec, stratified_split, stratified_subset
from jetsynth.data.load import augment_batch, load_dataset, training_batch
from jetsynth.errors import JetsynthError


def test_spec_parsing():
    spec = DataSpec.parse("mnist:/data/mnist", subset=0.1, seed=3)
    assert (spec.kind, spec.path, spec.subset, spec.seed) == ("mnist", "/data/mnist", 0.1, 3)
    assert (spec.val_split, spec.input_size, spec.mean, spec.augment) == (0.1, None, None, False)
    assert str(spec) == "mnist:/data/mnist"
    assert DataSpec.parse("folder:/my/images").kind == "folder"
    for bad in ("imagenet", "mnist", "digits:/x", "folder"):
        with pytest.raises(JetsynthError):
            DataSpec.parse(bad)
    with pytest.raises(JetsynthError, match="subset"):
        DataSpec.parse("digits", subset=1.5)
    with pytest.raises(JetsynthError, match="`val_split` must lie in"):
        DataSpec.parse("digits", val_split=1.0)
    with pytest.raises(JetsynthError, match="`input_size` must be a positive"):
        DataSpec.parse("digits", input_size=0)
    with pytest.raises(JetsynthError, match="give `mean` and `std` together"):
        DataSpec.parse("digits", mean=[0.5])
    with pytest.raises(JetsynthError, match="give `mean` and `std` together"):
        DataSpec.parse("digits", mean=[0.5, 0.5], std=[0.2])
    with pytest.raises(JetsynthError, match="`std` values must be positive"):
        DataSpec.parse("digits", mean=[0.5], std=[0.0])


def test_digits_builtin(digits):
    assert digits.input_shape == (1, 28, 28)
    assert digits.classes == 10
    assert len(digits.train_x) + len(digits.val_x) + len(digits.test_x) == 1797
    assert len(digits.val_x) == pytest.approx(0.1 * (1797 - len(digits.test_x)), abs=10)
    assert set(digits.test_y.tolist()) == set(range(10)) == set(digits.val_y.tolist())
    assert abs(float(digits.train_x[:].mean())) < 1e-4
    assert digits.preprocessing["layout"] == "NCHW"
    assert digits.preprocessing["class_names"] == [str(i) for i in range(10)]
    assert digits.preprocessing["color"] == "L" and "resize" not in digits.preprocessing


@pytest.mark.parametrize("compress", [False, True])
def test_idx_folder_loads(tmp_path, compress):
    folder = make_idx_folder(tmp_path / "m", train=30, test=10, compress=compress)
    data = load_dataset(DataSpec.parse(f"mnist:{folder}", val_split=0.0))
    assert data.train_x.shape == (30, 1, 28, 28) and data.test_x.shape == (10, 1, 28, 28)
    assert data.val_x.shape == (0, 1, 28, 28)
    assert data.train_y.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_fashion_mnist_uses_same_format(idx_folder):
    assert load_dataset(DataSpec.parse(f"fashion-mnist:{idx_folder}")).classes == 10


def test_missing_folder_and_file(tmp_path, idx_folder):
    with pytest.raises(JetsynthError, match="not found"):
        load_dataset(DataSpec.parse(f"mnist:{tmp_path / 'nope'}"))
    (idx_folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(JetsynthError, match="missing t10k-labels-idx1-ubyte"):
        load_dataset(DataSpec.parse(f"mnist:{idx_folder}"))


def test_wrong_magic(idx_folder):
    write_idx(idx_folder / "train-labels-idx1-ubyte", np.zeros(60), magic=0x0A01)
    with pytest.raises(JetsynthError, match="wrong magic number 0x00000a01"):
        load_dataset(DataSpec.parse(f"mnist:{idx_folder}"))
    write_idx(idx_folder / "train-labels-idx1-ubyte", np.zeros((60, 1, 1)), magic=0x803)
    with pytest.raises(JetsynthError, match="wrong magic number 0x00000803"):
        load_dataset(DataSpec.parse(f"mnist:{idx_folder}"))


def test_truncated_file(idx_folder):
    path = idx_folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(JetsynthError, match="truncated"):
        load_dataset(DataSpec.parse(f"mnist:{idx_folder}"))


def test_count_mismatch(idx_folder):
    write_idx(idx_folder / "train-labels-idx1-ubyte", np.zeros(59), magic=0x801)
    with pytest.raises(JetsynthError, match="60 images but 59 labels"):
        load_dataset(DataSpec.parse(f"mnist:{idx_folder}"))


def test_stratified_subset_is_seeded_and_keeps_proportions():
    labels = np.repeat(np.arange(10), [100] * 5 + [20] * 5)
    a = stratified_subset(labels, 0.1, seed=1)
    assert np.array_equal(a, stratified_subset(labels, 0.1, seed=1))
    assert not np.array_equal(a, stratified_subset(labels, 0.1, seed=2))
    counts = np.bincount(labels[a], minlength=10)
    assert counts.tolist() == [10] * 5 + [2] * 5


def test_subset_applies_to_training_split_only(tmp_path):
    folder = make_idx_folder(tmp_path / "m", train=100, test=20)
    data = load_dataset(DataSpec.parse(f"mnist:{folder}", subset=0.2))
    # validation (one of each class's ten) first, then a fifth of the remaining nine: two
    assert len(data.train_x) == 20 and len(data.val_x) == 10 and len(data.test_x) == 20


def _rows(images):
    return {bytes(np.asarray(row.numpy() * 1000, dtype=np.int64)) for row in images}


def test_validation_split_is_stratified_seeded_and_disjoint(tmp_path):
    folder = make_idx_folder(tmp_path / "m", train=200, test=20)
    data = load_dataset(DataSpec.parse(f"mnist:{folder}", seed=4))
    assert np.bincount(data.val_y.numpy(), minlength=10).tolist() == [2] * 10
    assert np.bincount(data.train_y.numpy(), minlength=10).tolist() == [18] * 10
    assert not _rows(data.val_x[:]) & _rows(data.train_x[:])
    again = load_dataset(DataSpec.parse(f"mnist:{folder}", seed=4))
    assert torch.equal(again.val_x[:], data.val_x[:])
    other = load_dataset(DataSpec.parse(f"mnist:{folder}", seed=5))
    assert not torch.equal(other.val_x[:], data.val_x[:])
    kept, held = stratified_split(np.array([0, 0, 1, 1, 1, 1, 2]), 0.5, seed=0)
    assert sorted(np.array([0, 0, 1, 1, 1, 1, 2])[held].tolist()) == [0, 1, 1]  # never a class's last
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(7))


def test_input_size_resizes_every_split(digits):
    data = load_dataset(DataSpec.parse("digits", input_size=32))
    assert data.input_shape == (1, 32, 32)
    assert data.val_x.shape[1:] == data.test_x.shape[1:] == (1, 32, 32)
    assert data.preprocessing["resize"] == [32, 32]
    assert abs(float(data.train_x[:].mean())) < 0.02  # statistics of the stored 28-pixel images
    assert len(data.train_x) == len(digits.train_x)


def test_given_mean_and_std_normalise(digits):
    data = load_dataset(DataSpec.parse("digits", mean=[0.5], std=[0.25]))
    assert data.preprocessing["mean"] == [0.5] and data.preprocessing["std"] == [0.25]
    assert float(data.train_x[:].min()) == pytest.approx(-2.0)  # black: (0 - 0.5) / 0.25
    assert float(data.train_x[:].max()) == pytest.approx(2.0)
    with pytest.raises(JetsynthError, match="give 3 value.* but the images have 1 channel"):
        load_dataset(DataSpec.parse("digits", mean=[0.5] * 3, std=[0.2] * 3))


def test_training_batch_augments_only_when_asked(digits):
    indices = torch.arange(16)
    images, labels = training_batch(digits, indices, torch.Generator().manual_seed(0))
    assert torch.equal(images, digits.train_x[:16]) and torch.equal(labels, digits.train_y[:16])
    augmented = replace(digits, augment=True)
    a, _ = training_batch(augmented, indices, torch.Generator().manual_seed(0))
    b, _ = training_batch(augmented, indices, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == images.shape and not torch.equal(a, images)


def test_augment_batch_crops_and_flips():
    image = torch.arange(16.0).view(1, 1, 4, 4)
    seen = set()
    for seed in range(40):
        out = augment_batch(image, torch.Generator().manual_seed(seed), padding=1, fill=torch.tensor([-1.0]))
        assert out.shape == (1, 1, 4, 4)
        assert set(out.flatten().tolist()) <= set(range(16)) | {-1.0}
        seen.add(tuple(out.flatten().tolist()))
    assert tuple(image.flatten().tolist()) in seen  # centred, not flipped
    assert tuple(image.flip(-1).flatten().tolist()) in seen  # centred, flipped
    assert len(seen) > 4


def _cifar_arrays(count, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 3072), dtype=np.uint8), [i % 10 for i in range(count)]


def test_cifar10_binary(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        data, labels = _cifar_arrays(4, i)
        rows = np.concatenate([np.array(labels, dtype=np.uint8)[:, None], data], axis=1)
        (folder / name).write_bytes(rows.tobytes())
    loaded = load_dataset(DataSpec.parse(f"cifar10:{tmp_path}", val_split=0.0))
    assert loaded.train_x.shape == (20, 3, 32, 32) and loaded.test_x.shape == (4, 3, 32, 32)
    (folder / "test_batch.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(JetsynthError, match="truncated"):
        load_dataset(DataSpec.parse(f"cifar10:{tmp_path}"))


def test_cifar10_python_batches_without_unsafe_unpickling(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data, labels = _cifar_arrays(3, i)
        (folder / name).write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=2))
    loaded = load_dataset(DataSpec.parse(f"cifar10:{tmp_path}", val_split=0.0))
    assert loaded.train_x.shape == (15, 3, 32, 32)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [1]}))
    with pytest.raises(JetsynthError, match="refusing to load builtins.print"):
        load_dataset(DataSpec.parse(f"cifar10:{tmp_path}"))


def test_stl10_binary_is_column_major(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    image = np.zeros((3, 96, 96), dtype=np.uint8)
    image[0, 5, 7] = 255  # channel 0, row 5, column 7
    for split in ("train", "test"):
        images = np.stack([image, image])
        (folder / f"{split}_X.bin").write_bytes(images.transpose(0, 1, 3, 2).tobytes())
        (folder / f"{split}_y.bin").write_bytes(bytes([1, 10]))
    loaded = load_dataset(DataSpec.parse(f"stl10:{tmp_path}"))
    assert loaded.train_y.tolist() == [0, 9]
    raw = loaded.train_x[0, 0] * loaded.preprocessing["std"][0] + loaded.preprocessing["mean"][0]
    assert tuple(torch.nonzero(raw > 0.5)[0].tolist()) == (5, 7)


def test_real_mnist(mnist_dir):
    data = load_dataset(DataSpec.parse(f"mnist:{mnist_dir}", subset=0.1))
    assert len(data.test_x) == 10000 and abs(len(data.val_x) - 6000) <= 10
    assert abs(len(data.train_x) - 5400) <= 10
    assert data.input_shape == (1, 28, 28)
    assert data.preprocessing["mean"][0] == pytest.approx(0.1307, abs=0.003)


def test_image_memory_by_hand():
    from jetsynth.data.load import check_memory, images_bytes

    assert images_bytes(1797, 1, 4096) == 2 * 1797 * 1 * 4096 * 4096 * 4 == 241_189_257_216
    spec = DataSpec.parse("digits", input_size=4096)
    with pytest.raises(JetsynthError, match=r"needs about 241\.2 GB .* more than the 1\.0 GB"):
        check_memory(spec, 1797, 1, 4096, available=10**9)
    check_memory(spec, 1797, 1, 28, available=10**9)  # 11.3 MB fits


def test_a_subset_keeping_less_than_an_image_of_a_class_is_refused():
    from jetsynth.data.dataset import check_subset

    labels = np.array([0] * 100 + [1] * 10)
    check_subset(labels, 0.05)  # class 1: 0.5 images, rounded to one
    with pytest.raises(JetsynthError, match=r"less than one training image of 1 of the 2 classes "
                                            r"\(class 1 has 10: 0\.4 images\); raise `subset` to "
                                            r"at least 0\.05"):
        check_subset(labels, 0.04)


@pytest.mark.parametrize(("mean", "std", "message"), [
    ((2.5,), (0.3,), r"`mean` values must lie in \[-1, 2\]"),
    ((0.5,), (0.0009,), r"`std` values must lie in \[0.001, 100\]"),
    ((0.5,), (101.0,), r"`std` values must lie"),
])
def test_normalisation_statistics_out_of_sense_are_refused(mean, std, message):
    with pytest.raises(JetsynthError, match=message):
        DataSpec.parse("digits", mean=mean, std=std)
    DataSpec.parse("digits", mean=(-1.0,), std=(0.001,))  # the edges are accepted
    DataSpec.parse("digits", mean=(2.0,), std=(100.0,))
