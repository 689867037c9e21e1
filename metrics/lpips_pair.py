"""lpips: perceptual distance between img_pos and img_neg (how much g- changed the picture).

Uses the lpips package (v0.1 linear heads, shipped with it) on an AlexNet (default) or VGG16
backbone, images scaled to [-1, 1]. The backbone's ImageNet weights come from torchvision's
cache (``$TORCH_HOME/hub/checkpoints``: alexnet-owt-7be5be79.pth / vgg16-397923af.pth) or an
explicit ``backbone_checkpoint``; nothing is downloaded. Only with ``allow_random_backbone:
true`` does a missing backbone fall back to a seeded random one, and then every aggregate is
flagged UNCALIBRATED (``metric.calibrated`` is False, ``metric.flags`` says why).

LPIPS' linear heads were calibrated on torchvision's ImageNet weights and no others. torchvision
names its files with the first hex digits of their sha256 (alexnet-owt-**7be5be79**.pth), which
torch.hub's ``check_hash`` verifies after a download; the same check runs here on whatever file
is used, so a file of the right name holding other weights is UNCALIBRATED too.

(The module is not called ``lpips`` so that it does not shadow the package.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field

from relbench.io.content_hash import file_sha256
from relbench.errors import UserError
from relbench.plugin.metric import Aggregate, Metric, MetricArgs, Sample
from relbench.plugin.registry import register_metric

BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


def published_prefix(net: str) -> str:
    """The sha256 prefix torchvision publishes in the backbone's file name (torch.hub's rule)."""
    import torch.hub

    return torch.hub.HASH_REGEX.search(BACKBONE_FILES[net]).group(1)


class LpipsArgs(MetricArgs):
    net: Literal["alex", "vgg"] = "alex"
    backbone_checkpoint: Optional[str] = Field(None, description="torchvision ImageNet weights of the backbone")
    allow_random_backbone: bool = False
    device: Optional[str] = None
    batch_size: int = Field(16, ge=1)


def backbone_path(net: str, explicit: Optional[str] = None) -> Optional[Path]:
    """The backbone weights file to use, or None when it is missing."""
    if explicit:
        p = Path(os.path.expanduser(explicit))
        if not p.is_file():
            raise UserError(f"lpips: backbone_checkpoint {explicit!r} not found")
        return p
    import torch

    p = Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_FILES[net]
    return p if p.is_file() else None


@register_metric("lpips")
class Lpips(Metric):
    """LPIPS distance between the g+ and g- images of a case (alex by default, vgg selectable)."""

    Args = LpipsArgs
    consumes = frozenset({"images"})
    version = "1"

    def __init__(self, args: LpipsArgs, ctx):
        super().__init__(args, ctx)
        self._model = None
        path = backbone_path(args.net, args.backbone_checkpoint)
        if path is None and not args.allow_random_backbone:
            import torch

            where = Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_FILES[args.net]
            raise UserError(
                f"lpips: {args.net} backbone weights missing: put {BACKBONE_FILES[args.net]} at {where} "
                f"(or set TORCH_HOME, or backbone_checkpoint: /path); allow_random_backbone: true gives an "
                f"uncalibrated score instead"
            )
        self.backbone = path
        self.backbone_sha256 = None if path is None else file_sha256(path)
        self.flags = []
        if path is None:
            self.flags.append(f"uncalibrated: random {args.net} backbone (allow_random_backbone)")
        elif not self.backbone_sha256.startswith(published_prefix(args.net)):
            self.flags.append(
                f"uncalibrated: {path} is not torchvision's {BACKBONE_FILES[args.net]} (its sha256 starts "
                f"{self.backbone_sha256[:8]}, torchvision publishes {published_prefix(args.net)})")
        self.calibrated = not self.flags

    def weights_identity(self):
        return {"backbone_sha256": self.backbone_sha256}

    @property
    def model(self):
        if self._model is None:
            self._model = _build(self.args.net, self.backbone, self.args.device or self.ctx.device or "cpu")
        return self._model

    def columns(self) -> list[str]:
        return ["lpips"]

    def aggregates(self) -> list[Aggregate]:
        tag = "" if self.calibrated else (
            "UNCALIBRATED (random backbone): " if self.backbone is None else "UNCALIBRATED (not torchvision's weights): ")
        return [
            Aggregate("lpips_mean", "lpips", "mean", higher_is_better=None,
                      description=f"{tag}mean LPIPS({self.args.net}) between img_pos and img_neg"),
            Aggregate("lpips_std", "lpips", "std", higher_is_better=None,
                      description=f"{tag}std of LPIPS({self.args.net}) between img_pos and img_neg"),
        ]

    def score(self, samples: list[Sample]) -> list[dict[str, Optional[float]]]:
        import torch

        out: list[dict[str, Optional[float]]] = [{"lpips": None} for _ in samples]
        pairs = [i for i, s in enumerate(samples) if s.image_pos_key is not None and s.image_neg_key is not None]
        same = [i for i in pairs if samples[i].image_pos_key == samples[i].image_neg_key]
        for i in same:  # one content-addressed image for both graphs: distance is exactly 0
            out[i]["lpips"] = 0.0
        todo = [i for i in pairs if i not in set(same)]
        device = next(self.model.parameters()).device
        for start in range(0, len(todo), self.args.batch_size):
            idx = todo[start : start + self.args.batch_size]
            a = [samples[i].image_pos for i in idx]
            b = [samples[i].image_neg for i in idx]
            for i, x, y in zip(idx, a, b):
                if x.shape != y.shape:
                    raise UserError(f"lpips: case {samples[i].case.id}: img_pos {x.shape} and img_neg {y.shape} differ in size")
            groups: dict[tuple, list[int]] = {}
            for j, x in enumerate(a):  # a batch needs one image size
                groups.setdefault(x.shape, []).append(j)
            for js in groups.values():
                with torch.no_grad():
                    d = self.model(_to_tensor([a[j] for j in js], device), _to_tensor([b[j] for j in js], device))
                for j, v in zip(js, d.flatten().tolist()):
                    out[idx[j]]["lpips"] = float(v)
        return out

    def close(self) -> None:
        self._model = None


def _to_tensor(images, device):
    import numpy as np
    import torch

    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    return (x / 127.5 - 1.0).to(device)


def _build(net: str, backbone: Optional[Path], device: str):
    """lpips.LPIPS with its shipped linear heads; the backbone loaded here from a local file so
    torchvision never reaches for the network (or seeded random when backbone is None)."""
    import warnings

    import lpips
    import torch
    import torchvision

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")  # lpips' pretrained=False
        torch.manual_seed(0)
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    if backbone is not None:
        tv = torchvision.models.alexnet(weights=None) if net == "alex" else torchvision.models.vgg16(weights=None)
        try:
            tv.load_state_dict(torch.load(backbone, map_location="cpu", weights_only=True))
        except Exception as exc:  # noqa: BLE001 - any load failure is a bad weights file
            raise UserError(f"lpips: {backbone} is not {BACKBONE_FILES[net]}-compatible weights ({type(exc).__name__})") from None
        for slice_ in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5):
            for name, layer in slice_.named_children():  # slices keep torchvision's feature indices
                layer.load_state_dict(tv.features[int(name)].state_dict())
    return model.to(device).eval()
