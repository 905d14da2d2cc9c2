import pytest
import torch

from lt_core.data import load_dataset
from lt_core.errors import DatasetUnavailable, LTError


def test_digits_split_is_fixed_and_normalised(digits):
    assert digits.input_shape == [1, 8, 8] and digits.num_classes == 10
    assert len(digits.x_train) == 1437 and len(digits.x_val) == 360
    assert abs(float(digits.x_train.mean())) < 1e-4
    assert float(digits.x_train.std()) == pytest.approx(1.0, abs=0.05)
    again = load_dataset("digits")
    assert torch.equal(again.y_val, digits.y_val)
    assert set(digits.y_val.tolist()) == set(range(10))


def test_mnist_from_a_local_torchvision_folder(mnist_root):
    ds = load_dataset("mnist", mnist_root, download=False)
    assert ds.input_shape == [1, 28, 28] and len(ds.x_train) == 600 and len(ds.x_val) == 100


def test_missing_dataset_says_where_files_go(tmp_path):
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("fashion-mnist", tmp_path / "nowhere", download=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path / "nowhere" / "FashionMNIST" / "raw") in message
    assert "--data-root" in message


def test_unknown_dataset():
    with pytest.raises(LTError, match="unknown dataset"):
        load_dataset("imagenet")
