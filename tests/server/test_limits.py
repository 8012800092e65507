"""Bounded work: body size limits (413), analysis off the event loop, a stuck analysis stopped."""

from __future__ import annotations

import json
import socket
import threading
import time
from urllib.parse import urlparse

import pytest
import requests

LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def small(launch):
    """A server with a small body limit and a short analysis timeout."""
    return launch(f"--CellpipeApp.max_body_bytes={LIMIT}", "--CellpipeApp.analysis_timeout=0.3")


def big_notebook(statements: int) -> dict:
    source = "".join(f"v{i} = [{i}, {i} + 1]\n" for i in range(statements))
    cells = [
        {"cell_type": "code", "metadata": {"tags": ["step:make"]}, "source": source, "outputs": [], "execution_count": None},
        {"cell_type": "code", "metadata": {"tags": ["step:use"]}, "source": "print(v1)", "outputs": [], "execution_count": None},
    ]  # fmt: skip
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": kernelspec}, "cells": cells}


def test_the_limit_is_a_setting_shown_in_config(small):
    assert small.api("GET", "config").json()["max_body_bytes"] == LIMIT


def test_a_body_over_the_limit_is_413_with_a_message(small):
    body = json.dumps({"path": "branches.ipynb", "content": "x" * (LIMIT + 10)})
    response = small.api("POST", "analyse", data=body)
    assert response.status_code == 413
    assert f"larger than {LIMIT} bytes" in response.json()["error"]["message"]
    assert small.api("GET", "config").status_code == 200  # the server is fine


def test_a_chunked_body_over_the_limit_is_413(small):
    def chunks():
        yield b'{"path": "branches.ipynb", "content": "'
        for _ in range(LIMIT // 4096 + 2):
            yield b"x" * 4096
        yield b'"}'

    response = small.api("POST", "runs", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text


def test_expect_100_continue_is_refused_before_the_body_is_sent(small):
    url = urlparse(small.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        request = (
            "POST /cellpipe/api/analyse HTTP/1.1\r\n"
            f"Host: {url.netloc}\r\nAuthorization: token cellpipe-test-token\r\n"
            f"Content-Type: application/json\r\nContent-Length: {LIMIT * 100}\r\nExpect: 100-continue\r\n\r\n"
        )
        sock.sendall(request.encode())
        answer = sock.recv(65536).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "100 (Continue)" not in answer


def test_status_answers_while_a_large_notebook_is_analysed(server):
    """Each /api/status answered while the analyse request was still outstanding proves the event loop
    was free; analysis on the loop would hold every one of them until it ended."""
    body = json.dumps({"path": "branches.ipynb", "content": big_notebook(25_000)})
    done = threading.Event()
    result: dict = {}

    def analyse():
        started = time.perf_counter()
        result["response"] = server.api("POST", "analyse", data=body, timeout=300)
        result["seconds"] = time.perf_counter() - started
        done.set()

    thread = threading.Thread(target=analyse)
    thread.start()
    latencies = []
    while not done.is_set():
        started = time.perf_counter()
        status = requests.get(f"{server.url}/api/status", headers=server.headers(), timeout=60)
        if done.is_set():
            break  # this one may have waited for the analysis to end: it proves nothing
        assert status.status_code == 200
        latencies.append(time.perf_counter() - started)
        time.sleep(0.05)
    thread.join()
    assert result["response"].status_code == 200, result["response"].text[:500]
    assert len(latencies) >= 3, (
        f"analysis took {result['seconds']:.2f} s; status answered {len(latencies)} times"
    )
    latencies.sort()
    print(
        f"analyse {len(body) / 1e6:.1f} MB took {result['seconds']:.2f} s; /api/status meanwhile: "
        f"{len(latencies)} answers, median {latencies[len(latencies) // 2] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
    )


@pytest.fixture(scope="module")
def strict(launch):
    """A server with the default body limit and a short analysis timeout."""
    return launch("--CellpipeApp.analysis_timeout=0.3")


def test_an_analysis_over_the_time_limit_is_stopped(strict):
    # ~6 MB of statements: seconds of parsing on any machine, so the 0.3 s limit always cuts in
    body = json.dumps({"path": "branches.ipynb", "content": big_notebook(300_000)})
    first = strict.api("POST", "analyse", json={"path": "branches.ipynb"})  # waits for the worker's warm-up
    assert first.status_code == 200, first.text
    response = strict.api("POST", "analyse", data=body, timeout=120)
    assert response.status_code == 400, response.text[:300]
    assert "longer than 0.3 s" in response.json()["error"]["message"]
    again = strict.api("POST", "analyse", json={"path": "branches.ipynb"})
    assert again.status_code == 200  # the worker is free again
