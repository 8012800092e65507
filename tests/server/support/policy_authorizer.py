"""A restrictive jupyter_server Authorizer for tests: allows exactly the ``resource:action`` pairs listed,
one a line, in the file named by ``$CELLPIPE_TEST_POLICY`` (read at every check, so a test can change the
policy of a running server), like a read-only share or an RBAC policy would. Reading the server's own
status (``api:read``, which the tests poll to see the server is up) is always allowed."""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_server.auth.authorizer import Authorizer


class PolicyAuthorizer(Authorizer):
    def is_authorized(self, handler, user, action: str, resource: str) -> bool:
        allowed = set(Path(os.environ["CELLPIPE_TEST_POLICY"]).read_text().split())
        return f"{resource}:{action}" in allowed or (resource, action) == ("api", "read")
