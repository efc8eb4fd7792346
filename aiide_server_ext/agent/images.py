"""Image outputs for models that see: the plots the user sees go into the prompt.

A cell's ``image/png`` / ``image/jpeg`` output (matplotlib, plotly's static export) is
checked, resized to a maximum edge and sent as an image content block; ``image/svg+xml``
is rasterised when ``cairosvg`` is installed (the ``svg`` extra; it needs libcairo), else
sent as text when small. Outputs come from the notebook file, which sandboxed code can
write: a payload is decoded only up to a size limit, by Pillow restricted to PNG and JPEG,
with a pixel cap (decompression bombs), and anything wrong with it becomes a note, never an
error. Pillow is imported only when a notebook has an image output.

Tokens follow Anthropic's rule of thumb, width * height / 750.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass
from typing import Any

#: Output MIME types that are images, in the order one output's representations are tried.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
#: Pixels of a decoded image; more is refused before decoding (a decompression bomb).
MAX_PIXELS = 40_000_000
#: Bytes of an encoded image sent to a provider (Anthropic accepts 5 MB of base64).
MAX_SEND_BYTES = 3_000_000


def image_tokens(width: int, height: int) -> int:
    return max(1, (width * height + 749) // 750)


@dataclass(frozen=True)
class Candidate:
    """One image output of a cell, not yet decoded."""

    cell_id: str
    index: int
    mime: str
    payload: Any


@dataclass(frozen=True)
class Prepared:
    """An image ready to send (``data`` base64), or ``text`` for an SVG sent as text."""

    media_type: str
    data: str
    width: int
    height: int
    text: str = ""

    @property
    def tokens(self) -> int:
        return image_tokens(self.width, self.height) if not self.text else (len(self.text) + 3) // 4


class Skipped(Exception):
    """Why an image output is not sent (a note in the context, never an error)."""


def candidates(cell: dict[str, Any]) -> list[Candidate]:
    """A cell's image outputs, one per output (its best representation)."""
    found: list[Candidate] = []
    outputs = cell.get("outputs")
    if not isinstance(outputs, list):  # the file is the sandbox's to write: any shape
        return found
    for index, out in enumerate(outputs):
        if not isinstance(out, dict):
            continue
        if out.get("output_type") not in ("display_data", "execute_result"):
            continue
        data = out.get("data")
        if not isinstance(data, dict):
            continue
        mime = next((m for m in IMAGE_TYPES if m in data), None)
        if mime is not None:
            found.append(Candidate(str(cell.get("id", "")), index, mime, data[mime]))
    return found


def _text(payload: Any) -> str:
    if isinstance(payload, list):  # nbformat may split multi-line values into lines
        return "".join(str(p) for p in payload)
    if not isinstance(payload, str):
        raise Skipped("not a string")
    return payload


def prepare(
    candidate: Candidate, *, max_edge: int, max_input_bytes: int, max_svg_chars: int
) -> Prepared:
    """Decode, check and resize one image output. Raises ``Skipped``; runs in a thread."""
    text = _text(candidate.payload)
    if len(text) > max_input_bytes * 4 // 3 + 4:  # base64 (or SVG text) over the limit
        raise Skipped(f"too large ({len(text) * 3 // 4:,} bytes; the limit is {max_input_bytes:,})")
    if candidate.mime == "image/svg+xml":
        return _svg(text, max_edge=max_edge, max_svg_chars=max_svg_chars)
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise Skipped("not valid base64") from None
    return _raster(raw, candidate.mime, max_edge=max_edge)


def _raster(raw: bytes, mime: str, *, max_edge: int, keep: bool = True) -> Prepared:
    import warnings

    from PIL import Image

    fmt = "PNG" if mime == "image/png" else "JPEG"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Only the decoder the MIME type names: Pillow has many, each an attack surface.
            image = Image.open(io.BytesIO(raw), formats=[fmt])
            width, height = image.size
            if width * height > MAX_PIXELS or width <= 0 or height <= 0:
                raise Skipped(f"too many pixels ({width}x{height})")
            image.load()
    except Skipped:
        raise
    except Image.DecompressionBombError:
        raise Skipped("too many pixels") from None
    except Exception as e:  # truncated, wrong format, unsupported mode
        raise Skipped(f"not a valid {fmt} image ({type(e).__name__})") from None
    if keep and max(width, height) <= max_edge and len(raw) <= MAX_SEND_BYTES:
        return Prepared(mime, base64.b64encode(raw).decode("ascii"), width, height)
    image.thumbnail((max_edge, max_edge))
    return _encode(image, fmt)


def _encode(image: Any, fmt: str) -> Prepared:
    if fmt == "PNG" and image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
        image = image.convert("RGBA")
    out = io.BytesIO()
    if fmt == "PNG":
        image.save(out, "PNG", optimize=False)
    if fmt == "JPEG" or out.tell() > MAX_SEND_BYTES:  # a photo saved as PNG: JPEG is smaller
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=85)
        fmt = "JPEG"
    media = "image/png" if fmt == "PNG" else "image/jpeg"
    data = base64.b64encode(out.getvalue()).decode("ascii")
    return Prepared(media, data, image.width, image.height)


_LENGTH = re.compile(r"^\s*([0-9.]+)\s*(px|pt|)\s*$")


def _svg_size(svg: str) -> tuple[float, float] | None:
    """The root element's width and height in pixels, when it states them plainly."""
    head = re.search(r"<svg\b[^>]*>", svg[:20_000])
    if head is None:
        return None
    sizes = []
    for name in ("width", "height"):
        found = re.search(rf'\s{name}\s*=\s*"([^"]*)"', head.group(0))
        length = _LENGTH.match(found.group(1)) if found else None
        if length is None:
            return None
        value = float(length.group(1)) * (96 / 72 if length.group(2) == "pt" else 1)
        sizes.append(value)
    return sizes[0], sizes[1]


def _svg(svg: str, *, max_edge: int, max_svg_chars: int) -> Prepared:
    try:
        import cairosvg  # type: ignore[import-untyped,import-not-found]
    except (ImportError, OSError):  # not installed, or libcairo missing
        cairosvg = None
    if cairosvg is not None:
        size = _svg_size(svg)
        # Render at most at the maximum edge: an SVG that says width="100000" must not
        # allocate that many pixels. Without a plain size, fix the width.
        if size is not None and max(size) > 0:
            options: dict[str, Any] = {"scale": min(1.0, max_edge / max(size))}
        else:
            options = {"output_width": max_edge}
        try:
            # unsafe=False (the default): no external files or URLs, no XML entities.
            png = cairosvg.svg2png(bytestring=svg.encode("utf-8"), unsafe=False, **options)
        except Exception as e:
            raise Skipped(f"not a valid SVG image ({type(e).__name__})") from None
        return _raster(png, "image/png", max_edge=max_edge)
    if len(svg) <= max_svg_chars:
        return Prepared("image/svg+xml", "", 0, 0, text=svg)
    raise Skipped("an SVG too large to send as text (install aiide[svg] to rasterise it)")


def block(prepared: Prepared) -> dict[str, Any]:
    """The Anthropic content block (providers convert it to their own)."""
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": prepared.media_type, "data": prepared.data},
    }


def is_image(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "image"


def has_images(messages: list[dict[str, Any]]) -> bool:
    """Whether any message holds an image block (also inside a tool result)."""
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            for b in content:
                if is_image(b):
                    return True
                inner = b.get("content") if isinstance(b, dict) else None
                if isinstance(inner, list) and any(is_image(x) for x in inner):
                    return True
    return False


def replace_images(
    messages: list[dict[str, Any]], note: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The messages with each image block (also inside a tool result) replaced by a text
    ``note`` (dropped when None), and the image blocks taken out."""
    taken: list[dict[str, Any]] = []

    def swap(blocks: list[Any]) -> list[Any]:
        out: list[Any] = []
        for b in blocks:
            if is_image(b):
                taken.append(b)
                if note is not None:
                    out.append({"type": "text", "text": note})
            elif isinstance(b, dict) and isinstance(b.get("content"), list):
                out.append({**b, "content": swap(b["content"])})
            else:
                out.append(b)
        return out

    result = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            message = {**message, "content": swap(content)}
        result.append(message)
    return result, taken


def without_images(
    messages: list[dict[str, Any]], note: str = "[image not sent: this model does not see images]"
) -> list[dict[str, Any]]:
    """The messages with each image block replaced by a note (a model that sees no images)."""
    return replace_images(messages, note)[0] if has_images(messages) else messages


def block_tokens(block: dict[str, Any]) -> int:
    """An image block's tokens, from its own header (for calibration: its base64 is not
    text the model reads)."""
    try:
        from PIL import Image

        raw = base64.b64decode(block["source"]["data"])
        width, height = Image.open(io.BytesIO(raw), formats=["PNG", "JPEG"]).size
        return image_tokens(width, height)
    except Exception:
        return 0


def data_url(block: dict[str, Any]) -> str:
    source = block["source"]
    return f"data:{source['media_type']};base64,{source['data']}"
