"""The registry's web face (``auditkit serve``): a FastAPI app with server-rendered pages for
the supervisor and a JSON API for submission and queries (docs/registry.md, "Server and API").

FastAPI and uvicorn are the ``serve`` extra: nothing here is imported by the rest of auditkit
unless the server is started."""
