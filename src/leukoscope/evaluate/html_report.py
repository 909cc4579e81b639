"""One self-contained HTML report per evaluation, cross-validation or experiment.

Everything is inline (CSS, PNG plots and thumbnails as base64 data URIs), so the file opens offline, can be
mailed or archived, and never fetches anything. `metrics.json` is written beside it with the same numbers.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leukoscope import __version__
from leukoscope._io import write_json, write_text

REPORT_NAME = "report.html"
METRICS_NAME = "metrics.json"
THUMB_SIZE = 112
UNKNOWN_SUBJECTS = (
    "Subjects are unknown for these images: each image is its own subject, so folds/splits cannot rule out "
    "images of the same patient on both sides; scores may be optimistic."
)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem;line-height:1.4}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:.85rem}.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5rem .8rem;
margin:.6rem 0}table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:right}th{background:#f4f4f4}
td.l,th.l{text-align:left}.plots{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0}figure img{max-width:520px;border:1px solid #eee}figcaption{font-size:.8rem;color:#555}
.gallery{display:flex;flex-wrap:wrap;gap:.6rem}.card{width:130px;font-size:.72rem;word-break:break-all}
.card img{width:112px;height:112px;object-fit:contain;background:#000;display:block}
"""


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _image_bytes(image: Path | str | bytes) -> bytes:
    return image if isinstance(image, bytes) else Path(image).read_bytes()


def thumbnail_png(image: Path | str | bytes | np.ndarray, size: int = THUMB_SIZE) -> bytes | None:
    """A small PNG of an image file or RGB array; None where the image cannot be read."""
    import cv2

    from leukoscope.data.images import decode_image, read_image
    from leukoscope.errors import DataError

    try:
        if isinstance(image, np.ndarray):
            rgb = image
        elif isinstance(image, bytes):
            rgb = decode_image(image)
        else:
            rgb = read_image(image)
    except DataError:
        return None
    scale = size / max(rgb.shape[:2])
    if scale < 1:
        rgb = cv2.resize(rgb, (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))))
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    return buf.tobytes() if ok else None


def confident_errors(
    paths: Sequence[str],
    y_true: Sequence[int] | np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    pred: Sequence[int] | np.ndarray | None = None,
    k: int = 12,
) -> list[dict[str, Any]]:
    """The k misclassified images the model was most sure about (highest probability of its wrong answer)."""
    y = np.asarray(y_true).astype(int)
    probs = np.asarray(probs)
    pred = probs.argmax(axis=1) if pred is None else np.asarray(pred).astype(int)
    wrong = np.flatnonzero(pred != y)
    conf = probs[wrong, pred[wrong]]
    order = wrong[np.argsort(-conf, kind="stable")][:k]
    return [
        {
            "image": paths[i],
            "caption": f"true {class_names[y[i]]}, predicted {class_names[pred[i]]} "
            f"(p={probs[i, pred[i]]:.2f}) {Path(paths[i]).name}",
        }
        for i in order
    ]


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return html.escape(str(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return "n/a" if math.isnan(float(value)) else f"{float(value):.4f}"
    return html.escape(str(value))


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    rows = list(rows)
    if not rows:
        return "<p>(empty)</p>"
    cols = list(columns or dict.fromkeys(c for r in rows for c in r))
    head = "".join(f'<th class="l">{html.escape(str(c))}</th>' for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cls = ' class="l"' if isinstance(v, str) else ""
            cells.append(f"<td{cls}>{_fmt(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool | np.integer | np.floating)


def metrics_sections(metrics: Mapping[str, Any], title: str = "Metrics") -> list[tuple[str, str]]:
    """Scalar metrics as one table; dict-of-dicts (per class, CIs) and the confusion matrix as their own."""
    sections: list[tuple[str, str]] = []
    scalars = [{"metric": k, "value": v} for k, v in metrics.items() if _is_scalar(v)]
    if scalars:
        sections.append((title, _table(scalars)))
    names = list(metrics.get("class_names") or [])
    for key, value in metrics.items():
        if isinstance(value, Mapping) and value and all(isinstance(v, Mapping) for v in value.values()):
            rows = [
                {"": str(k), **{kk: vv for kk, vv in v.items() if _is_scalar(vv)}} for k, v in value.items()
            ]
            sections.append((key.replace("_", " "), _table(rows)))
        elif isinstance(value, Mapping) and value and all(_is_scalar(v) for v in value.values()):
            sections.append((key.replace("_", " "), _table([{"": k, "value": v} for k, v in value.items()])))
        elif key == "confusion_matrix" and isinstance(value, list | np.ndarray):
            sections.append(("Confusion matrix (rows: true, columns: predicted)", _confusion(value, names)))
    return sections


def _confusion(matrix: Any, names: Sequence[str]) -> str:
    m = np.asarray(matrix)
    names = list(names) if len(names) == len(m) else [str(i) for i in range(len(m))]
    rows = [
        {"true \\ pred": names[i], **{names[j]: int(m[i, j]) for j in range(len(m))}} for i in range(len(m))
    ]
    return _table(rows)


def render_report(
    title: str,
    metrics: Mapping[str, Any],
    images: Mapping[str, Path | str | bytes] | None = None,
    errors_gallery: Sequence[Mapping[str, Any]] | None = None,
    tables: Mapping[str, Any] | None = None,
    notes: Sequence[str] | None = None,
    metrics_title: str = "Metrics",
) -> str:
    """The report as one HTML string (no external resources)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">LeukoScope {html.escape(__version__)} · '
        f"{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}</p>",
    ]
    parts += [f'<div class="note">{html.escape(n)}</div>' for n in notes or []]
    for name, body in metrics_sections(metrics, metrics_title):
        parts.append(f"<h2>{html.escape(name)}</h2>{body}")
    for name, table in (tables or {}).items():
        parts.append(f"<h2>{html.escape(name)}</h2>{_table(_rows(table))}")
    if images:
        parts.append('<h2>Plots</h2><div class="plots">')
        for name, img in images.items():
            uri = png_data_uri(_image_bytes(img))
            alt = html.escape(name)
            parts.append(f'<figure><img src="{uri}" alt="{alt}"><figcaption>{alt}</figcaption></figure>')
        parts.append("</div>")
    if errors_gallery is not None:
        parts.append(_gallery(errors_gallery))
    parts.append("</body></html>")
    return "\n".join(parts)


def _rows(table: Any) -> list[Mapping[str, Any]]:
    if hasattr(table, "to_dict"):
        return table.to_dict(orient="records")
    return list(table)


def _gallery(items: Sequence[Mapping[str, Any]]) -> str:
    out = ["<h2>Most confident errors</h2>"]
    if not items:
        out.append("<p>No errors.</p>")
        return "".join(out)
    out.append('<div class="gallery">')
    for item in items:
        thumb = thumbnail_png(item["image"])
        cap = html.escape(str(item.get("caption", "")))
        img = f'<img src="{png_data_uri(thumb)}" alt="{cap}">' if thumb else "<div>(unreadable)</div>"
        out.append(f'<div class="card">{img}{cap}</div>')
    out.append("</div>")
    return "".join(out)


def write_report(
    out_dir: str | Path,
    metrics: Mapping[str, Any],
    images: Mapping[str, Path | str | bytes] | None = None,
    errors_gallery: Sequence[Mapping[str, Any]] | None = None,
    title: str = "LeukoScope report",
    tables: Mapping[str, Any] | None = None,
    notes: Sequence[str] | None = None,
    metrics_name: str = METRICS_NAME,
) -> Path:
    """Write `report.html` and `metrics.json` (both atomically) into `out_dir`; returns the HTML path."""
    out_dir = Path(out_dir)
    write_json(out_dir / metrics_name, dict(metrics))
    text = render_report(title, metrics, images, errors_gallery, tables, notes)
    return write_text(out_dir / REPORT_NAME, text)
