"""The `patchline tune` sub-command's arguments and entry (argparse only; the work is app/tune.py)."""

from __future__ import annotations

from pathlib import Path

from patchline.errors import ConfigError

DEFAULT_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2")


def _csv(kind):
    def parse(text: str):
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"{text!r} is not a comma-separated list of {kind.__name__} values.") from None
    return parse


def _layer_sets(text: str) -> list[tuple[str, ...]]:
    return [tuple(part.split("+")) for part in text.split(",") if part]


def cmd_tune(args) -> int:
    from patchline.app.tune import run_tune
    from patchline.data.datasets import good_images
    from patchline.settings import LineSettings, check_layers, load_category_table, validate

    if not Path(args.images).is_dir():
        raise ConfigError(f"--images {args.images} does not exist or is not a folder.")
    base = (load_category_table(args.config).get(args.line) if args.config is not None
            else validate(LineSettings(line=args.line)))
    layer_sets = [check_layers(list(s), "--grid-layers: ") for s in args.grid_layers]
    out = args.out or Path(f"{args.line}.tuned.yaml")
    return run_tune(base, good_images(args.images), str(args.images), out, args.grid_backbones, args.grid_sizes,
                    layer_sets, args.grid_coreset, args.budget_fps, args.weights, not args.quiet, args.grid_patchsize)


def add_tune_command(sub) -> None:
    """Register `patchline tune` on the sub-command parser."""
    p = sub.add_parser("tune", help="find a line's settings from its good images under a frames/s budget; writes a "
                                    "line config for train --config")
    p.add_argument("--line", required=True, help="the product line")
    p.add_argument("--images", type=Path, required=True, help="folder of good images of the line (nothing else is read)")
    p.add_argument("--config", type=Path, help="settings file whose entry for the line is the base (resize / imagesize "
                                               "ratio, calibration, false-alarm rate …)")
    p.add_argument("--budget-fps", type=float, help="frames/s the line must reach on this machine")
    p.add_argument("--grid-backbones", type=_csv(str), default=list(DEFAULT_BACKBONES),
                   help=f"comma-separated (default {','.join(DEFAULT_BACKBONES)}: the backbones with packaged "
                        f"ImageNet weights)")
    p.add_argument("--grid-sizes", type=_csv(int), default=[224, 320],
                   help="image sizes, comma-separated (default 224,320)")
    p.add_argument("--grid-layers", type=_layer_sets, default=[("layer2",), ("layer2", "layer3")],
                   help="layer sets, comma-separated, layers joined by + (default layer2,layer2+layer3)")
    p.add_argument("--grid-patchsize", type=_csv(int),
                   help="patch sizes (the embedding's neighbourhood, odd), comma-separated (default: the base "
                        "line's, 3 unless --config says otherwise), e.g. 3,5")
    p.add_argument("--grid-coreset", type=_csv(float), default=[0.01, 0.1],
                   help="coreset ratios, comma-separated (default 0.01,0.1)")
    p.add_argument("--weights", type=Path, help="backbone weights (wide_resnet backbones need them)")
    p.add_argument("--out", type=Path, help="the line config to write (default <line>.tuned.yaml)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_tune)
