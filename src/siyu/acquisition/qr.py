"""QR images of a code's WeCom URL (segno: pure Python, PNG and SVG)."""

from __future__ import annotations

import io

import segno

from siyu.core.errors import DomainError, ErrorCode


def _code(url: str) -> segno.QRCode:
    if not url:
        raise DomainError(ErrorCode.CONFLICT, "the code is still being created in WeCom; try again in a moment")
    return segno.make(url, error="m")


def png(url: str, *, scale: int = 10) -> bytes:
    buffer = io.BytesIO()
    _code(url).save(buffer, kind="png", scale=scale, border=2)
    return buffer.getvalue()


def svg(url: str, *, scale: int = 10) -> bytes:
    buffer = io.BytesIO()
    _code(url).save(buffer, kind="svg", scale=scale, border=2, xmldecl=False, svgns=True)
    return buffer.getvalue()


def svg_inline(url: str, *, scale: int = 8) -> str:
    """For embedding in a page (the printable poster)."""
    return svg(url, scale=scale).decode()
