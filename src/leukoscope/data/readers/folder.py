"""An image folder: one sub-folder per class (any number of classes, nested folders allowed).

Folders carry no subject information, so each image is its own subject (`subject_known` False).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from leukoscope.data.readers._base import (
    Reader,
    finish_table,
    has_image,
    list_images,
    own_subject_row,
    register_reader,
    subdirs,
)
from leukoscope.data.table import problem


def detect(path: Path) -> bool:
    return path.is_dir() and any(has_image(d) for d in subdirs(path))


def read(path: Path) -> pd.DataFrame:
    rows: list[dict] = []
    problems: list[dict[str, str]] = []
    for class_dir in subdirs(path):
        images = list_images(class_dir, recursive=True)
        if not images:
            problems.append(problem("empty_folder", class_dir, "class folder holds no images; class ignored"))
        rows.extend(own_subject_row(image, path, class_dir.name, "folder") for image in images)
    return finish_table(
        rows,
        problems,
        path,
        empty="no images in class sub-folders",
        hint="put each class's images (bmp, png, jpg, tif) in a sub-folder named after the class",
    )


register_reader(
    Reader(
        name="folder",
        detect=detect,
        read=read,
        priority=30,
        description="image folder: one sub-folder per class (subjects unknown)",
    )
)
