"""Data sources of the study: clicks files (RSC15 or synthetic) and prepared splits.

* :mod:`.clicks`    -- the yoochoose clicks format (read fast, write exactly);
* :mod:`.synthetic` -- a generator of realistic synthetic clicks;
* :mod:`.rsc15`     -- download / verify / extract the real RSC15 clicks;
* :mod:`.prepared`  -- an already split dataset in the official TSV format;
* :mod:`.sources`   -- ``prepare_dataset``: one config entry -> split + manifest;
* :mod:`.errors`    -- :class:`DataError`, the error for bad input.
"""
from .errors import DataError

__all__ = ["DataError"]
