"""Tests for loading bodies by hub id: fast, clear failures when the hub is out of reach."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import huggingface_hub
import pytest
import torch
from transformers import BertConfig, BertModel

from xmodal.bodies import BodyUnavailableError, hub, load_body

UNKNOWN_ID = "xmodal-tests/no-such-model-0b7f"


def test_unknown_hub_id_fails_within_seconds():
    start = time.perf_counter()
    with pytest.raises(BodyUnavailableError) as caught:
        load_body(UNKNOWN_ID)
    assert time.perf_counter() - start < 10
    assert UNKNOWN_ID in str(caught.value)
    assert "minilm" in str(caught.value)  # lists the packaged bodies


def test_unreachable_hub_explains_local_folders(monkeypatch):
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=0: False)
    with pytest.raises(BodyUnavailableError, match="cannot be reached") as caught:
        load_body(UNKNOWN_ID)
    assert "save_pretrained" in str(caught.value)
    assert "tiny-text" in str(caught.value)


def test_offline_env_skips_the_connection_check(monkeypatch):
    def fail(timeout=0):
        raise AssertionError("connection attempted although HF_HUB_OFFLINE is set")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "hub_reachable", fail)
    with pytest.raises(BodyUnavailableError, match="HF_HUB_OFFLINE"):
        load_body(UNKNOWN_ID)


def test_cached_snapshot_is_used_offline(monkeypatch, tmp_path):
    config = BertConfig(
        vocab_size=30,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=20,
    )
    BertModel(config).save_pretrained(tmp_path)

    def cached(repo_id, filename, **kwargs):
        return str(tmp_path / filename) if repo_id == "org/cached" else None

    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=0: False)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", cached)
    body = load_body("org/cached")
    assert (body.info.name, body.info.width, body.info.folder) == ("org/cached", 8, str(tmp_path))
    assert body(torch.zeros(1, 3, 8)).shape == (1, 3, 8)


def test_malformed_hub_id_is_a_value_error(monkeypatch):
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=0: False)
    with pytest.raises(ValueError, match="valid hub id"):
        load_body("not a//valid id")


def test_reachability_check_honours_the_timeout(monkeypatch):
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        start = time.perf_counter()
        assert hub.hub_reachable(timeout=0.5) is False
        assert time.perf_counter() - start < 2


def test_any_http_answer_counts_as_reachable(monkeypatch):
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    try:
        assert hub.hub_reachable(timeout=2) is True  # the handler answers 501
    finally:
        server.server_close()
