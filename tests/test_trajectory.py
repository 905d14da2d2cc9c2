import json
import pickle
import struct

import pytest
import torch
from safetensors.torch import save as st_save

from lt_core.errors import InvalidFile, LTError
from lt_core.models import build_model, make_config
from lt_core.trajectory import (Checkpoint, ParamFile, Trajectory, TrajectoryRecorder, load_any, load_param_set,
                                load_params, load_trajectory, save_params, save_trajectory, trajectory_bytes)


def _trajectory(arch="conv", n=3):
    config = make_config(arch, [1, 8, 8], 10, **({"channels": [4, 8]} if arch == "conv" else {"width": 16}))
    checkpoints = []
    for k in range(n):
        torch.manual_seed(k)
        model = build_model(config)
        params = {name: p.detach().clone() for name, p in model.named_parameters()}
        buffers = {name: b.detach().clone() + k for name, b in model.named_buffers() if b.is_floating_point()}
        checkpoints.append(Checkpoint(params, buffers, step=10 * k, epoch=float(k), metrics={"val_acc": 0.1 * k}))
    return Trajectory(config, "digits", checkpoints, {"optimizer": "sgd", "lr": 0.1, "seed": 0})


def _rewrite(traj, mutate_tensors=None, mutate_header=None):
    """Bytes of a trajectory file after tampering with its tensors or header."""
    tensors = {f"ckpt.{k}.{n}": t for k, c in enumerate(traj.checkpoints) for n, t in c.state().items()}
    header = traj.header()
    if mutate_tensors:
        mutate_tensors(tensors)
    if mutate_header:
        mutate_header(header)
    return st_save(tensors, metadata={"lt_explorer": json.dumps(header)})


def test_round_trip_is_exact(tmp_path):
    traj = _trajectory()
    save_trajectory(traj, tmp_path / "t.safetensors")
    back = load_trajectory(tmp_path / "t.safetensors")
    assert back.model == traj.model and back.dataset == traj.dataset and back.training == traj.training
    assert len(back) == len(traj)
    for a, b in zip(traj.checkpoints, back.checkpoints):
        assert (a.step, a.epoch, a.metrics) == (b.step, b.epoch, b.metrics)
        assert a.state().keys() == b.state().keys()
        assert all(torch.equal(a.state()[n], b.state()[n]) for n in a.state())


def test_params_round_trip_and_spec(tmp_path):
    traj = _trajectory("mlp")
    c = traj.checkpoints[-1]
    save_params(ParamFile(traj.model, "digits", c.params, c.buffers, {"note": "x"}), tmp_path / "p.safetensors")
    pf = load_params(tmp_path / "p.safetensors")
    assert pf.info == {"note": "x"} and all(torch.equal(pf.params[n], c.params[n]) for n in c.params)
    save_trajectory(traj, tmp_path / "t.safetensors")
    first = load_param_set(f"{tmp_path / 't.safetensors'}@0")
    last = load_param_set(f"{tmp_path / 't.safetensors'}@-1")
    assert torch.equal(first.params["fc1.weight"], traj.checkpoints[0].params["fc1.weight"])
    assert torch.equal(last.params["fc1.weight"], traj.checkpoints[-1].params["fc1.weight"])
    with pytest.raises(LTError, match="no checkpoint 7"):
        load_param_set(f"{tmp_path / 't.safetensors'}@7")
    with pytest.raises(LTError, match="say which checkpoint"):
        load_param_set(str(tmp_path / "t.safetensors"))


def test_missing_tensor_is_named():
    traj = _trajectory("mlp")
    data = _rewrite(traj, mutate_tensors=lambda t: t.pop("ckpt.2.fc2.weight"))
    with pytest.raises(InvalidFile, match="checkpoint 2 is missing fc2.weight"):
        load_trajectory(data)


@pytest.mark.parametrize("mutate,message", [
    (lambda t: t.__setitem__("ckpt.1.fc1.weight", torch.zeros(3, 3)), r"checkpoint 1: fc1.weight has shape \(3, 3\)"),
    (lambda t: t.__setitem__("ckpt.0.fc1.bias", torch.zeros(16, dtype=torch.int64)), "dtype torch.int64"),
    (lambda t: t["ckpt.1.out.bias"].__setitem__(0, float("nan")), "NaN or infinite"),
    (lambda t: t.__setitem__("ckpt.0.extra.weight", torch.zeros(2)), "does not know: extra.weight"),
    (lambda t: t.__setitem__("ckpt.5.fc1.bias", torch.zeros(16)), "checkpoint 5 but its header lists only 3"),
])
def test_bad_tensors_are_rejected_with_a_specific_message(mutate, message):
    with pytest.raises(InvalidFile, match=message):
        load_trajectory(_rewrite(_trajectory("mlp"), mutate_tensors=mutate))


@pytest.mark.parametrize("mutate,message", [
    (lambda h: h.__setitem__("format_version", 99), "format_version 99"),
    (lambda h: h["model"].__setitem__("arch", "vit"), "unknown architecture 'vit'"),
    (lambda h: h.__setitem__("dataset", "imagenet"), "unknown dataset 'imagenet'"),
    (lambda h: h.__setitem__("checkpoints", []), "no checkpoints"),
    (lambda h: h["model"].__setitem__("width", 32), "fc1.weight has shape"),
])
def test_bad_headers_are_rejected(mutate, message):
    with pytest.raises(InvalidFile, match=message):
        load_trajectory(_rewrite(_trajectory("mlp"), mutate_header=mutate))


def test_pickled_file_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(_trajectory("mlp").checkpoints[0].params, path)
    with pytest.raises(InvalidFile, match="never loads pickles"):
        load_trajectory(path)

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    with pytest.raises(InvalidFile, match="never loads pickles"):
        load_any(pickle.dumps(Boom()))


def test_truncated_and_corrupted_files_are_rejected(tmp_path):
    data = trajectory_bytes(_trajectory())
    with pytest.raises(InvalidFile, match="truncated|corrupt"):
        load_trajectory(data[: len(data) // 2])
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 100])
    with pytest.raises(InvalidFile, match="cut.safetensors is corrupt or truncated"):
        load_trajectory(tmp_path / "cut.safetensors")
    with pytest.raises(InvalidFile, match="too short"):
        load_trajectory(data[:5])
    header_len = struct.unpack("<Q", data[:8])[0]
    garbled = data[:8] + b"{" + bytes(header_len - 1) + data[8 + header_len:]
    with pytest.raises(InvalidFile, match="header is not JSON"):
        load_trajectory(garbled)
    with pytest.raises(InvalidFile, match="not an LT Explorer file"):
        load_trajectory(st_save({"w": torch.zeros(2)}))
    with pytest.raises(InvalidFile, match="truncated or not safetensors"):
        load_trajectory(b"hello world, I am a text file")


def test_size_limit(monkeypatch):
    data = trajectory_bytes(_trajectory())
    monkeypatch.setenv("LT_MAX_FILE_MB", "0.001")
    with pytest.raises(InvalidFile, match="LT_MAX_FILE_MB"):
        load_trajectory(data)


def test_kind_mismatch_is_explained(tmp_path):
    traj = _trajectory("mlp")
    save_trajectory(traj, tmp_path / "t.safetensors")
    with pytest.raises(InvalidFile, match="not a parameter file"):
        load_params(tmp_path / "t.safetensors")


def test_recorder_in_a_users_own_training_loop(tmp_path, digits):
    config = make_config("conv", digits.input_shape, 10, channels=[4, 8])
    torch.manual_seed(0)
    model = build_model(config)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    rec = TrajectoryRecorder(config, "digits", training={"optimizer": "sgd", "lr": 0.05})
    rec.record(model, step=0)
    for step in range(1, 31):
        idx = torch.randint(0, len(digits.x_train), (64,))
        loss = torch.nn.functional.cross_entropy(model(digits.x_train[idx]), digits.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            rec.record(model, step=step, epoch=step / 23, train_loss=loss.item())
    rec.save(tmp_path / "mine.safetensors")
    back = load_trajectory(tmp_path / "mine.safetensors")
    assert [c.step for c in back.checkpoints] == [0, 10, 20, 30]
    assert torch.equal(back.checkpoints[-1].params["conv1.weight"], model.conv1.weight.detach())
    assert torch.equal(back.checkpoints[-1].buffers["bn1.running_mean"], model.bn1.running_mean)
    with pytest.raises(LTError, match="does not match"):
        rec.record(build_model(make_config("mlp", [1, 8, 8], 10)), step=40)
