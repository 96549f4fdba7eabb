"""What a command names, resolved: a category of a dataset or a folder of good images, a settings
file and the command line's overrides → the line's settings and its images. The CLI parses; these
functions decide which files and which entries that means (one sentence, exit 2, when they don't fit).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from patchline.errors import PatchlineError
from patchline.paths import project_file

if TYPE_CHECKING:
    from patchline.settings import LineSettings


def check_folder(path: Path | None, what: str) -> None:
    if path is not None and not Path(path).is_dir():
        raise PatchlineError(f"{what} {path} does not exist or is not a folder.")


def line_base(line: str, config: Path | None) -> LineSettings:
    """A line's base settings: its entry in `config` (e.g. written by tune), else the defaults."""
    from patchline.settings import LineSettings, load_category_table, validate

    return load_category_table(config).get(line) if config is not None else validate(LineSettings(line=line))


def training_set(category: str | None, dataset: Path | None, config: Path | None, line: str | None,
                 images: Path | None, overrides: dict) -> tuple[LineSettings, list]:
    """(settings, good images) for `train`: an MVTec CATEGORY of `dataset` (its entry in `config`,
    default configs/mvtec.yaml), or `line`'s folder of `images`; the overrides win."""
    from patchline.data.datasets import MvtecCategory, good_images
    from patchline.settings import load_category_table

    if (category is None) == (images is None):
        raise PatchlineError("give either a CATEGORY with --dataset, or --line NAME with --images FOLDER.")
    if category is not None:
        if dataset is None:
            raise PatchlineError(f"training category '{category}' needs --dataset (the MVTec AD root folder).")
        check_folder(dataset, "dataset folder")
        base = load_category_table(config or project_file("configs/mvtec.yaml")).get(category)
        items = MvtecCategory(dataset, category).check().train_images()
        return base.replace(**overrides, line=line or category), items
    if not line:
        raise PatchlineError("training from --images needs --line NAME (the product line's bank name).")
    return line_base(line, config).replace(**overrides), good_images(images)


def dataset_lines(dataset: Path, config: Path, categories: Sequence[str] | None, overrides: dict):
    """(settings, good images) of each category of `config` present in `dataset` (or only `categories`)."""
    from patchline.data.datasets import MvtecCategory, mvtec_categories
    from patchline.settings import load_category_table

    table = load_category_table(config)
    names = categories or [c for c in mvtec_categories(dataset) if c in table.categories]
    if not names:
        raise PatchlineError(f"no category of {config} is present in {dataset}.")
    for name in names:
        yield table.get(name).replace(**overrides), MvtecCategory(dataset, name).check().train_images()


def evaluation_categories(dataset: Path, categories: Sequence[str] | None) -> list[str]:
    """The categories to evaluate: those given, else every category folder of the dataset."""
    from patchline.data.datasets import mvtec_categories

    return list(categories or mvtec_categories(dataset))
