"""Reading the files of a multipart upload from the request body.

python-multipart (the parser Starlette and FastAPI use) instead of werkzeug's
``request.files``: werkzeug compiles two regular expressions for every request's own boundary
and scans the body in Python, about 1-1.4 ms of CPU for a 300 kB X-ray, a sixth of everything
the API spends on an upload; python-multipart takes 0.13 ms (PERFORMANCE.md). Files stay in
memory: Flask caps the body at MAX_UPLOAD_BYTES (413) before a byte of it is parsed.

What can go wrong maps to :class:`~pneumonia_api.errors.ApiError` (a 400 that says how to send
the file), never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import request
from python_multipart import FormParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from .errors import ApiError

CHUNK = 256 * 1024
HOW = "Send each X-ray as a multipart form field named 'file' (curl -F file=@xray.jpeg)."


@dataclass
class Upload:
    filename: str | None
    data: bytes


def _too_many(limit: int) -> ApiError:
    return ApiError(
        400,
        "too_many_files",
        f"More than {limit} files in one request. Split the upload into smaller batches.",
    )


def files(field: str, limit: int, max_bytes: int) -> list[Upload]:
    """The files sent under ``field``, in order (at least one); other fields are ignored.

    Parsing stops as soon as more than ``limit`` parts arrived, so a body of thousands of
    tiny parts costs nothing.
    """
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    boundary = options.get(b"boundary")
    if mimetype != b"multipart/form-data" or not boundary:
        raise ApiError(400, "no_file", f"No file received. {HOW}")
    found: list[Upload] = []
    parts = 0

    def on_part(_part) -> None:
        nonlocal parts
        parts += 1
        if parts > limit + 8:  # a few extra text fields are tolerated, not thousands
            raise _too_many(limit)

    def on_file(f) -> None:
        on_part(f)
        if f.field_name == field.encode():
            f.file_object.seek(0)
            name = f.file_name.decode("utf-8", "replace") if f.file_name else None
            found.append(Upload(name, f.file_object.read()))
            if len(found) > limit:
                raise _too_many(limit)

    parser = FormParser(
        "multipart/form-data",
        on_field=on_part,
        on_file=on_file,
        boundary=boundary,
        config={"MAX_MEMORY_FILE_SIZE": max_bytes + 1},
    )
    stream = request.stream  # Flask's: raises 413 beyond MAX_CONTENT_LENGTH
    try:
        while chunk := stream.read(CHUNK):
            parser.write(chunk)
        parser.finalize()
    except FormParserError:
        raise ApiError(
            400, "invalid_upload", f"The request body is not valid multipart form data. {HOW}"
        ) from None
    if not found:
        raise ApiError(400, "no_file", f"No file received. {HOW}")
    return found
