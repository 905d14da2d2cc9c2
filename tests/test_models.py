import pytest
import torch

from lt_core.errors import LTError
from lt_core.models import build_model, count_params, init_params, make_config


@pytest.mark.parametrize("shape", [[1, 8, 8], [1, 28, 28], [3, 32, 32]])
@pytest.mark.parametrize("arch,options", [("mlp", {"width": 32, "depth": 3}), ("conv", {"channels": [8, 16]}),
                                          ("conv", {"channels": [8, 16, 16], "batchnorm": False, "head": "flatten"}),
                                          ("resnet", {"blocks_per_stage": 2})])
def test_forward_shapes(arch, options, shape):
    model = build_model(make_config(arch, shape, 10, **options))
    assert model(torch.randn(5, *shape)).shape == (5, 10)


def test_same_seed_same_init_and_different_seed_differs():
    cfg = make_config("mlp", [1, 8, 8], 10)
    a, _ = init_params(cfg, 3)
    b, _ = init_params(cfg, 3)
    c, _ = init_params(cfg, 4)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not torch.equal(a["fc1.weight"], c["fc1.weight"])


def test_config_errors_are_readable():
    with pytest.raises(LTError, match="unknown architecture"):
        make_config("transformer", [1, 8, 8], 10)
    with pytest.raises(LTError, match="width"):
        make_config("mlp", [1, 8, 8], 10, width=0)
    with pytest.raises(LTError, match="channels"):
        make_config("conv", [1, 8, 8], 10, channels=[])


def test_count_params_mlp():
    assert count_params(make_config("mlp", [1, 8, 8], 10, width=512, depth=2)) == 64 * 512 + 512 + 512 * 512 + 512 + 5130
