"""Transport security and path rules of the daemon (DESIGN.md §5)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import grpc
import pytest
from daemon_support import InProcess, short_tmp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from engine.daemon import security
from engine.daemon.app import Daemon, DaemonConfig
from protos.recast.v1 import engine_pb2 as pb
from protos.recast.v1 import engine_pb2_grpc as pb_grpc

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def root():
    """A short folder (unix socket paths are limited to ~100 bytes), removed afterwards."""
    path = short_tmp()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_tcp_needs_the_bearer_token(tiny_model_dir):
    root = short_tmp()  # InProcess removes it
    token_file = root / "token"
    with InProcess(tiny_model_dir, root=root, listen="127.0.0.1:0", token_file=token_file) as d:
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600  # created private
        token = token_file.read_text().strip()
        address = d.daemon.tcp_address
        assert address and address.startswith("127.0.0.1:")
        channel = grpc.insecure_channel(address)
        stub = pb_grpc.EngineStub(channel)
        for metadata in ([], [("authorization", "Bearer wrong-token-wrong-token")], [("authorization", token)]):
            with pytest.raises(grpc.RpcError) as exc:
                stub.GetEngineInfo(pb.GetEngineInfoRequest(), metadata=metadata, timeout=10)
            assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as exc:  # health and reflection are guarded too
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        info = stub.GetEngineInfo(pb.GetEngineInfoRequest(), metadata=[("authorization", f"Bearer {token}")])
        assert info.api_version == "recast.v1"
        # the unix socket needs no token: its permissions are the authentication
        assert d.stub.GetEngineInfo(pb.GetEngineInfoRequest()).pid == os.getpid()
        channel.close()


def _config(root: Path, model: Path, **kw) -> DaemonConfig:
    return DaemonConfig(
        runtime_dir=root / "run", data_dir=root / "data", socket_path=root / "run" / "s.sock", model=str(model), **kw
    )


def test_token_file_readable_by_others_is_refused(tiny_model_dir, root):
    token_file = root / "token"
    token_file.write_text("x" * 40 + "\n")
    os.chmod(token_file, 0o644)
    with pytest.raises(security.SecurityError, match="0600"):
        Daemon(_config(root, tiny_model_dir, listen="127.0.0.1:0", token_file=token_file)).start()
    assert not (root / "run" / "s.sock").exists()


def test_non_loopback_needs_tls_and_token(tiny_model_dir, root):
    with pytest.raises(security.SecurityError, match="TLS"):
        Daemon(_config(root, tiny_model_dir, listen="0.0.0.0:0", token_file=root / "token")).start()
    with pytest.raises(security.SecurityError, match="token"):
        security.check_listen("127.0.0.1:5000", has_token=False, has_tls=False)
    security.check_listen("10.1.2.3:5000", has_token=True, has_tls=True)
    security.check_listen("[::1]:5000", has_token=True, has_tls=False)


def test_second_daemon_in_process_is_refused_and_lock_freed_on_stop(tiny_model_dir, root):
    first = Daemon(_config(root, tiny_model_dir))
    first.start()
    try:
        with pytest.raises(security.SecurityError, match="already running"):
            Daemon(_config(root, tiny_model_dir)).start()
    finally:
        first.stop()
    again = Daemon(_config(root, tiny_model_dir))  # the lock died with the first daemon
    again.start()
    again.stop()


def test_runtime_dir_is_private_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path = security.runtime_dir()
    assert path == tmp_path / "recast" and stat.S_IMODE(os.stat(path).st_mode) == 0o700
    os.chmod(path, 0o755)
    with pytest.raises(security.SecurityError, match="open to other users"):
        security.ensure_private_dir(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o755  # refused, never chmodded
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(security.SecurityError, match="link"):
        security.ensure_private_dir(link)


@pytest.mark.parametrize("field", ["socket", "data_dir", "runtime_dir"])
def test_existing_shared_folders_are_refused_not_chmodded(tiny_model_dir, root, field):
    """`--socket ~/x.sock` must not take group and other access off the user's home."""
    home = root / "home"
    home.mkdir()
    os.chmod(home, 0o755)
    places = {"socket": {"socket_path": home / "x.sock"}, "data_dir": {"data_dir": home},
              "runtime_dir": {"runtime_dir": home, "socket_path": home / "s.sock"}}[field]
    config = _config(root, tiny_model_dir)
    for name, value in places.items():
        setattr(config, name, value)
    with pytest.raises(security.SecurityError, match=rf"{field}: {home} is open to other users"):
        Daemon(config).start()
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o755
    assert not (home / "x.sock").exists() and not (home / "s.sock").exists()


@pytest.mark.parametrize(
    ("peer", "local"),
    [
        ("unix:/run/x.sock", True),
        ("unix:", True),
        ("ipv4:127.0.0.1:5000", True),
        ("ipv6:[::1]:5000", True),
        ("ipv4:10.0.0.2:5000", False),
        ("ipv6:[2001:db8::1]:5000", False),
        ("", False),
    ],
)
def test_local_peer_detection(peer, local):
    assert security.is_local_peer(peer) is local


def test_path_rules(tmp_path):
    private = tmp_path / "engine"
    private.mkdir()
    secret = private / "engine.db"
    secret.write_bytes(b"x")
    source = tmp_path / "source.mp4"
    source.write_bytes(b"x")
    with pytest.raises(security.PathRefused):
        security.resolve_import_path(str(secret), [private])
    with pytest.raises(security.PathRefused):  # a link into the private folder is resolved first
        (tmp_path / "sneaky").symlink_to(secret)
        security.resolve_import_path(str(tmp_path / "sneaky"), [private])
    with pytest.raises(security.InputError):
        security.resolve_import_path(str(tmp_path), [private])  # a folder
    with pytest.raises(security.InputError):
        security.resolve_import_path("relative/clip.mp4", [private])
    (tmp_path / "sub").mkdir()
    with pytest.raises(security.PathRefused, match="source"):  # traversal is resolved before the check
        security.resolve_export_path(str(tmp_path / "sub" / ".." / "source.mp4"), [source], [private])
    with pytest.raises(FileExistsError):
        security.resolve_export_path(str(tmp_path / "source.mp4"), [], [private])
    with pytest.raises(security.PathRefused):
        security.resolve_export_path(str(private / "out.mp4"), [], [private])
    assert security.resolve_export_path(str(tmp_path / "new.mp4"), [source], [private]) == tmp_path / "new.mp4"
