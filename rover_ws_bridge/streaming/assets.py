"""Files of installed packages by `package://pkg/path` URI: the meshes and URDF resources a
Foxglove client's 3D panel asks for (fetchAsset).

What is refused, before any file is touched: a URI that is not `package://` + a package name
+ a relative path of letters, digits and `_ - . /` (no `..` part, no `//`, no `%`, no `\\`),
one that no glob of `asset_allow` matches, and a package that is not installed. The file is
then `<prefix>/share/<pkg>/<path>` for the first install prefix that has the package (as
ros/definitions.py finds them: AMENT_PREFIX_PATH, then sys.prefix); it must be a regular file
of at most `asset_max_bytes` (it is answered in one WebSocket message, which waits in the
client's control queue).
"""
from __future__ import annotations

import fnmatch
import os
import re
import stat
from pathlib import Path
from typing import Iterable

PREFIX = "package://"
MAX_URI_CHARS = 1024
_URI = re.compile(r"package://([A-Za-z0-9_]+)/([A-Za-z0-9_\-./]+)")


class AssetRefused(Exception):
    """The URI is not served; the message says why (sent to the client)."""


def asset_path(uri: str, allow: Iterable[str]) -> Path:
    """The installed file a `package://` URI names, or AssetRefused."""
    if not isinstance(uri, str) or len(uri) > MAX_URI_CHARS:
        raise AssetRefused(f"an asset URI is a string of at most {MAX_URI_CHARS} characters")
    match = _URI.fullmatch(uri)
    if match is None:
        raise AssetRefused("only package://<package>/<path> URIs are served (letters, digits "
                           "and _ - . / in the path)")
    package, relative = match.groups()
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise AssetRefused("an asset path has no empty, '.' or '..' part")
    if not any(fnmatch.fnmatchcase(uri, glob) for glob in allow):
        raise AssetRefused(f"{uri} is not in the bridge's 'asset_allow' list")
    share = package_share(package)
    if share is None:
        raise AssetRefused(f"package {package} is not installed")
    return share.joinpath(*parts)


def read_asset(path: Path, max_bytes: int) -> bytes:
    """The file's bytes (run in a worker thread: a mesh may be megabytes), or AssetRefused."""
    try:
        with open(path, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise AssetRefused("not a regular file")
            if info.st_size > max_bytes:
                raise AssetRefused(f"the file is {info.st_size} bytes; assets are served up to "
                                   f"{max_bytes} bytes ('asset_max_bytes')")
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise AssetRefused(f"cannot read it: {exc.strerror or exc}") from None
    if len(data) > max_bytes:  # it grew meanwhile
        raise AssetRefused(f"the file is over {max_bytes} bytes ('asset_max_bytes')")
    return data


def package_share(package: str) -> Path | None:
    """`<prefix>/share/<package>` of the first install prefix that has the package (its
    package.xml, or its ament index marker)."""
    from ..ros.definitions import install_prefixes  # ROS-free; files only

    for prefix in install_prefixes():
        share = prefix / "share" / package
        marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / package
        if (share / "package.xml").is_file() or (marker.is_file() and share.is_dir()):
            return share
    return None
