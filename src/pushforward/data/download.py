"""Where image data sets are looked for, and the checksummed download into the user cache.

May import, of this package: errors.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import PushforwardError


@dataclass(frozen=True)
class Remote:
    """Files of one data set as published: name -> SHA-256, and mirrors tried in order."""

    files: dict[str, str]
    mirrors: tuple[str, ...]
    install_hint: str


REMOTES: dict[str, Remote] = {
    "fashion-mnist": Remote(
        files={
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        install_hint="install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu)",
    ),
    "mnist": Remote(
        files={
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        install_hint="download the four IDX files from https://ossci-datasets.s3.amazonaws.com/mnist/",
    ),
    "cifar10": Remote(
        files={
            "cifar-10-binary.tar.gz": "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
        },
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        install_hint="download cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
}

DEBIAN_DIRS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}


def cache_dir() -> Path:
    """``$PUSHFORWARD_CACHE``, else ``$XDG_CACHE_HOME/pushforward``, else ``~/.cache/pushforward``."""
    if os.environ.get("PUSHFORWARD_CACHE"):
        return Path(os.environ["PUSHFORWARD_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pushforward"


def search_dirs(name: str, data_dir: str | None) -> list[Path]:
    """Folders searched for a named set, in order: --data-dir, $PUSHFORWARD_DATA, cache, Debian."""
    dirs: list[Path] = []
    if data_dir:
        dirs += [Path(data_dir).expanduser() / name, Path(data_dir).expanduser()]
    if os.environ.get("PUSHFORWARD_DATA"):
        root = Path(os.environ["PUSHFORWARD_DATA"]).expanduser()
        dirs += [root / name, root]
    dirs.append(cache_dir() / name)
    if name in DEBIAN_DIRS:
        dirs.append(DEBIAN_DIRS[name])
    return dirs


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def not_found_fix(name: str) -> str:
    return (
        f"{REMOTES[name].install_hint}, or put the files in a folder and pass --data-dir DIR "
        f"(or set PUSHFORWARD_DATA)"
    )


def fetch_verified(urls: list[str], target: Path, digest: str, timeout: float = 30.0) -> list[str]:
    """Fetch the first of ``urls`` whose SHA-256 starts with ``digest`` (a whole digest, or the
    prefix that a published file name carries) to ``target``; return the errors, none on success.

    The file lands under its final name only after its checksum matched, so an interrupted
    download never looks complete.
    """
    errors = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
                for chunk in iter(lambda: r.read(1 << 20), b""):
                    out.write(chunk)
            got = sha256_of(Path(tmp))
            if not got.startswith(digest):
                errors.append(f"{url}: checksum {got[:12]}... != expected {digest[:12]}...")
                continue
            os.replace(tmp, target)
            return []
        except (urllib.error.URLError, OSError, ValueError) as e:
            errors.append(f"{url}: {getattr(e, 'reason', e)}")
        finally:
            Path(tmp).unlink(missing_ok=True)
    return errors


def download(name: str, timeout: float = 30.0) -> Path:
    """Fetch every file of ``name`` into the cache, verifying SHA-256; return the cache folder.

    Files already cached with the right checksum are kept. Each file lands under its final name
    only after its checksum matched, so an interrupted download never looks complete.
    """
    remote = REMOTES[name]
    dest = cache_dir() / name
    searched = ", ".join(str(d) for d in search_dirs(name, None))
    if os.environ.get("PUSHFORWARD_OFFLINE"):
        raise PushforwardError(
            f"data {name!r} not found (searched {searched}) and PUSHFORWARD_OFFLINE is set; "
            + not_found_fix(name)
        )
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PushforwardError(
            f"cannot create cache folder {dest} ({e.strerror}); set PUSHFORWARD_CACHE"
        ) from None
    for fname, digest in remote.files.items():
        target = dest / fname
        if target.exists() and sha256_of(target) == digest:
            continue
        errors = fetch_verified([m + fname for m in remote.mirrors], target, digest, timeout)
        if errors:
            raise PushforwardError(
                f"data {name!r} not found (searched {searched}) and the download failed "
                f"({'; '.join(errors)}); " + not_found_fix(name)
            )
    return dest
