"""Every error emqc raises on purpose.

One module, one base class (:class:`EmqcError`), one subclass per kind of problem.
Each error carries a one-paragraph message that names the file, the problem and
what to do about it; the command line prints exactly that paragraph (no
traceback) and exits with :attr:`EmqcError.exit_code`.

Subclasses also inherit from the matching built-in exception where that helps
callers (``except FileNotFoundError`` still catches a missing source), after
zarr's ``errors.py``.
"""

from __future__ import annotations

__all__ = [
    "EmqcError",
    "InputError",
    "SourceNotFoundError",
    "UnsupportedSourceError",
    "CorruptSourceError",
    "ShapeMismatchError",
    "UnsupportedDtypeError",
    "MissingVoxelSizeError",
    "OutputExistsError",
    "OutOfSpaceError",
    "IncompleteVolumeError",
    "IntegrityError",
    "MissingChunkError",
    "NoTissueError",
    "SamplingError",
    "CustodyError",
    "KeyFileError",
    "TamperError",
    "BatchManifestError",
    "ClusterConfigError",
    "StorageError",
]


class EmqcError(Exception):
    """Base class of every error emqc raises on purpose.

    Parameters
    ----------
    message : str
        One paragraph: what file, what went wrong, what to do.
    """

    #: Exit status of the command line for this kind of error.
    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def diagnostic(self) -> str:
        """Text the command line prints for this error (no traceback)."""
        return f"error: {self.message}"


class InputError(EmqcError, ValueError):
    """The input given to emqc cannot be used as it is."""


class SourceNotFoundError(InputError, FileNotFoundError):
    """The source volume (file, folder, dataset or URL) does not exist."""


class UnsupportedSourceError(InputError):
    """The source exists but is not in a format emqc reads."""


class CorruptSourceError(InputError):
    """The source file is truncated or corrupt and cannot be decoded."""


class ShapeMismatchError(InputError):
    """Slices of one stack do not all have the same shape."""


class UnsupportedDtypeError(InputError, TypeError):
    """The voxel type cannot be stored as an 8-bit EM image by a stated rule."""


class MissingVoxelSizeError(InputError):
    """The voxel size is neither in the source's metadata nor given."""


class OutputExistsError(EmqcError, FileExistsError):
    """The output path exists and overwriting was not asked for."""


class OutOfSpaceError(EmqcError, OSError):
    """Writing failed because the disk (or a quota) is full."""


class IncompleteVolumeError(EmqcError):
    """The volume was not written to the end (interrupted) or lacks its manifest."""

    exit_code = 1


class IntegrityError(EmqcError):
    """Stored bytes do not match their recorded digests (missing or altered)."""

    exit_code = 1


class MissingChunkError(IntegrityError, KeyError):
    """A chunk that must exist is absent from storage (zarr would read it as zeros)."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.message


class SamplingError(InputError):
    """Blocks cannot be sampled with the parameters given."""


class NoTissueError(SamplingError):
    """No position exists where a block lies wholly inside tissue."""


class CustodyError(EmqcError):
    """The custody ledger, key registry or a signed report cannot be used as asked."""


class KeyFileError(CustodyError):
    """A private key file is missing, unreadable, too widely readable or needs a passphrase."""


class TamperError(IntegrityError, CustodyError):
    """A signed record, ledger event or report file fails verification (altered or forged)."""


class BatchManifestError(InputError):
    """A batch study manifest (``emqc batch MANIFEST``) cannot be used as it is."""


class ClusterConfigError(InputError):
    """A cluster configuration file for ``emqc batch --cluster`` is missing or invalid."""


class StorageError(EmqcError, OSError):
    """Object storage (S3, GCS) could not be read or written: unreachable, denied or missing."""
