"""A jupyter_server Authorizer for a read-only user (reads allowed; no writes, no kernels): the browser
tests start a second `jupyter lab` with it to see what such a user gets from cellpipe's routes."""

from __future__ import annotations

from jupyter_server.auth.authorizer import Authorizer


class ReadOnlyAuthorizer(Authorizer):
    def is_authorized(self, handler, user, action: str, resource: str) -> bool:
        return action == "read"
