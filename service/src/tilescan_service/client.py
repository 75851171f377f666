"""The client side of ``POST /predict``, standard library only: the deploy smoke test runs it on a runner
that has none of the service's dependencies (``PYTHONPATH=shared/src:service/src``)."""

from __future__ import annotations

import uuid


def multipart_body(
    image: bytes, filename: str = "tile.png", boundary: str | None = None
) -> tuple[bytes, str]:
    """``/predict``'s request body with ``image`` in the form field ``image``, and its Content-Type."""
    boundary = boundary or uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + image + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
