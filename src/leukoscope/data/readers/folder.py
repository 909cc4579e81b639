"""An image folder: one sub-folder per class (any number of classes, nested folders allowed).

Folders carry no subject information, so each image is its own subject (`subject_known` False).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from leukoscope.data.readers._base import (
    Reader,
    abspath,
    has_image,
    list_images,
    own_subject,
    register_reader,
    subdirs,
)
from leukoscope.data.table import make_table, problem, with_problems
from leukoscope.errors import DataError


def detect(path: Path) -> bool:
    return path.is_dir() and any(has_image(d) for d in subdirs(path))


def read(path: Path) -> pd.DataFrame:
    rows: list[dict] = []
    problems: list[dict[str, str]] = []
    for class_dir in subdirs(path):
        images = list_images(class_dir, recursive=True)
        if not images:
            problems.append(problem("empty_folder", class_dir, "class folder holds no images; class ignored"))
        rows.extend(
            {
                "path": abspath(image),
                "label": class_dir.name,
                "subject": own_subject(image, path),
                "split": "",
                "source": "folder",
                "subject_known": False,
            }
            for image in images
        )
    if not rows:
        raise DataError(
            "no images in class sub-folders",
            path=path,
            hint="put each class's images (bmp, png, jpg, tif) in a sub-folder named after the class",
        )
    return with_problems(make_table(rows), problems)


register_reader(
    Reader(
        name="folder",
        detect=detect,
        read=read,
        priority=30,
        description="image folder: one sub-folder per class (subjects unknown)",
    )
)
