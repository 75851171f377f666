"""A typed view of ``params.yaml``: one module per top-level key (a stage's, or ``promote``), each with
its dataclasses, and :mod:`.loading` to read a key's section into them. A stage imports only the
modules of the sections it reads, so that its DVC deps change only when they do.
"""
