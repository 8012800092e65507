"""A real S3 API on loopback for the tests: ``moto_server`` run as a process, reached through s3fs.

The server is a separate process speaking the S3 HTTP protocol (not moto's in-process ``mock_aws``), so
the code under test goes through botocore's signing, retries and error mapping exactly as against AWS S3
or MinIO. Nothing here reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.loopback import free_port
from tests.support.processes import ending_with_this_process, stop_process

START_TIMEOUT_S = 60.0  # moto imports a lot; on a loaded two-core machine its start takes seconds
# Dummy credentials and a region, and no instance-metadata lookups (they time out slowly off AWS).
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "cellpipe-test-key",
    "AWS_SECRET_ACCESS_KEY": "cellpipe-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
# What could point botocore at real AWS or at another identity: removed for the test.
S3_ENV_REMOVED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")


@dataclass
class MotoServer:
    """A running ``moto_server``; ``endpoint`` is its http://127.0.0.1:PORT."""

    process: subprocess.Popen
    endpoint: str
    log: Path

    @classmethod
    def start(cls, log: Path) -> MotoServer:
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        env = {key: value for key, value in os.environ.items() if key not in S3_ENV_REMOVED}
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        with open(log, "wb") as output:
            process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**env, **S3_ENV},
                preexec_fn=ending_with_this_process(),
            )
        server = cls(process, endpoint, log)
        server.wait_until_answering()
        return server

    def wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited ({self.process.returncode}): {self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.endpoint} in {START_TIMEOUT_S:.0f}s")

    def stop(self) -> None:
        stop_process(self.process, timeout=10)


@dataclass
class S3Bucket:
    """A fresh bucket on the loopback S3 server, with the environment that reaches it."""

    name: str
    endpoint: str
    env: dict[str, str] = field(default_factory=dict)  # the S3 settings alone (for a process or a pod)

    def url(self, prefix: str = "store") -> str:
        return f"s3://{self.name}/{prefix}"

    def client(self) -> Any:
        """A plain boto3 client, to look at or damage objects behind the store's back."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name=S3_ENV["AWS_DEFAULT_REGION"],
        )

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def s3_env(endpoint: str) -> dict[str, str]:
    return {**S3_ENV, "AWS_ENDPOINT_URL": endpoint}


def new_bucket(endpoint: str) -> S3Bucket:
    bucket = S3Bucket(f"cellpipe-{uuid.uuid4().hex[:12]}", endpoint, s3_env(endpoint))
    bucket.client().create_bucket(Bucket=bucket.name)
    return bucket


def forget_cached_clients() -> None:
    """s3fs keeps one filesystem object per set of arguments: a test's new endpoint or credentials must
    not meet the previous test's client."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
