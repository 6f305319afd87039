"""The ``vaekit`` command line: ``train``, ``eval``, ``sample``, ``reconstruct``, ``interpolate`` (and ``reproduce``)."""
