"""The supervision registry (docs/registry.md): every audited deployment and its signed reports,
over time, in SQLite or PostgreSQL, with an append-only hash-chained event log.

Modules are imported on use: the CLI's other commands never load SQLAlchemy.

* :mod:`~auditkit.registry.location` — where a registry lives (a path or a database URL)
* :mod:`~auditkit.registry.models` — the tables (SQLAlchemy 2)
* :mod:`~auditkit.registry.db` — engine, ``init`` (Alembic ``upgrade head``), sessions
* :mod:`~auditkit.registry.chain` — the event log's hashes (pure)
* :mod:`~auditkit.registry.extract` — the audit's fields from the signed evidence (pure)
* :mod:`~auditkit.registry.blobs` — the PDFs, stored by SHA-256
* :mod:`~auditkit.registry.ingest` — ``submit``: verify, recompute, store, log
* :mod:`~auditkit.registry.check` — ``check``: the chain and every recorded row
* :mod:`~auditkit.registry.queries` — ``list``, ``history``
* :mod:`~auditkit.registry.regression` — the regression flag between consecutive audits (pure)
* :mod:`~auditkit.registry.rows` — row references and digests
* :mod:`~auditkit.registry.scope` — who is asking and what they may read (pure)
* :mod:`~auditkit.registry.credentials` — password hashes, tokens, session secrets (pure)
* :mod:`~auditkit.registry.accounts` — accounts, API tokens, authorisations; who may submit
* :mod:`~auditkit.registry.trust` — trust roots, per organisation or registry-wide
* :mod:`~auditkit.registry.policy` — re-audit periods and due dates
* :mod:`~auditkit.registry.supersession` — which audits are superseded, and why
"""
