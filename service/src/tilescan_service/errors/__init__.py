"""Every failure becomes a JSON :class:`~tilescan_service.schemas.ErrorBody` with a fitting status.

:mod:`.codes` lists each ``error`` code with its status, :mod:`.responses` builds the answers,
:mod:`.handlers` maps exceptions to them, :mod:`.docs` describes them in the OpenAPI document.
"""
