"""gunicorn's access log, its client-supplied fields escaped (``--logger-class``)."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from project.logs import escape


class EscapingLogger(Logger):
    """gunicorn writes the request line as the client sent it: an ESC byte in it would
    reach the terminal or the log collector raw. Escaped here, as nginx does."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> Any:
        atoms = super().atoms(resp, req, environ, request_time)
        return {k: escape(v) if isinstance(v, str) else v for k, v in atoms.items()}
