"""Read multipart uploads into memory with a hard size limit, and classify image bytes by content.

Starlette's form parser spools large files to a temporary file on disk; here uploads never touch the
disk, the limit is enforced while the body streams in (a client cannot make us buffer more than it), and
the user's file name is only ever echoed back, never used as a path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header

MAX_FIELDS = 256  # parts per request (files + plain fields); a flood of tiny parts is refused early

# Magic numbers of the formats `decode_image` reads; anything else is answered with 415.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


class ApiError(Exception):
    """A request the client must fix; `status` is the HTTP code, the message goes out as {"error": ...}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Part:
    name: str
    filename: str | None = None
    content_type: str = ""
    data: bytearray = field(default_factory=bytearray)

    @property
    def is_file(self) -> bool:
        return self.filename is not None


def sniff_image_type(data: bytes) -> str | None:
    """'png' / 'jpeg' / 'bmp' / 'tiff' from the first bytes, or None: content decides, never the name."""
    for magic, kind in _SIGNATURES:
        if data.startswith(magic):
            return kind
    return None


def check_content_length(header: str | None, limit: int) -> None:
    if header is None:
        return
    try:
        declared = int(header)
    except ValueError:
        raise ApiError(400, "Content-Length header is not a number") from None
    if declared > limit:
        raise ApiError(413, f"upload is {declared:,} bytes, over the limit of {limit:,}")


async def read_multipart(content_type: str | None, chunks: AsyncIterator[bytes], limit: int) -> list[Part]:
    """Parse a multipart/form-data body as it arrives; 415 if not multipart, 413 past `limit` bytes."""
    media, params = parse_options_header(content_type or "")
    if media != b"multipart/form-data":
        raise ApiError(415, "send the image as multipart/form-data (form field 'file')")
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "multipart body has no boundary")
    collector = _Collector()
    parser = MultipartParser(boundary, collector.callbacks())
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > limit:
                raise ApiError(413, f"upload is over the limit of {limit:,} bytes")
            parser.write(chunk)
        parser.finalize()
    except ApiError:
        raise
    except Exception as exc:  # python-multipart's parse errors: the body is malformed
        raise ApiError(400, f"malformed multipart body ({type(exc).__name__})") from None
    return collector.finish()


class _Collector:
    """python-multipart callbacks that gather each part's headers and bytes in memory."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self._headers: dict[bytes, bytes] = {}
        self._name = b""
        self._value = b""
        self._data = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._begin,
            "on_part_data": self._part_data,
            "on_part_end": self._end,
            "on_header_field": self._field,
            "on_header_value": self._hvalue,
            "on_header_end": self._header_end,
        }

    def _begin(self) -> None:
        if len(self.parts) >= MAX_FIELDS:
            raise ApiError(400, f"too many form fields (more than {MAX_FIELDS})")
        self._headers, self._data = {}, bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._data += data[start:end]

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _hvalue(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._name.lower()] = self._value
        self._name, self._value = b"", b""

    def _end(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if name is None:
            raise ApiError(400, "a multipart part has no name")
        filename = options.get(b"filename")
        self.parts.append(
            Part(
                name=name.decode("utf-8", "replace"),
                filename=None if filename is None else filename.decode("utf-8", "replace"),
                content_type=self._headers.get(b"content-type", b"").decode("latin-1"),
                data=self._data,
            )
        )

    def finish(self) -> list[Part]:
        return self.parts
