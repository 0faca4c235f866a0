"""Alembic migration scripts of the registry, shipped inside the package (``registry init``
runs ``upgrade head`` on them programmatically; no alembic.ini)."""
