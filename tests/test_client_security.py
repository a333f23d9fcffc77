"""Client-side security (DESIGN.md §5): which runtime folder and token file the SDK and the studio
trust, logs opened without following links, the daemon's token loader, and TLS to the daemon.

Real parts only: real folders, files and links; a real gRPC server standing in for another user's
"daemon" (it records every call that reaches it); the real daemon with the tiny model behind TLS.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import subprocess
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from daemon_support import InProcess, short_tmp
from test_bridge_support import write_target

from desktop.client import connection
from desktop.client.connection import EngineOptions
from engine.daemon import security
from plugin_bridge import discovery, errors
from plugin_bridge.cli import build_parser, connector
from plugin_bridge.client import RecastClient
from plugin_bridge.discovery import Endpoint
from plugin_bridge.private_files import UntrustedPath
from protos.recast.v1 import engine_pb2 as pb

pytestmark = pytest.mark.timeout(180)
OTHER_UID = 65534  # "nobody": as root, the tests hand folders and files to another user


@pytest.fixture
def env(monkeypatch):
    """No discovery variables from the outside world."""
    for name in (discovery.ENV_SOCKET, discovery.ENV_ADDRESS, discovery.ENV_TOKEN_FILE, discovery.ENV_RUNTIME_DIR,
                 discovery.ENV_TLS_CA):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def short():
    path = short_tmp()  # unix socket paths must stay short
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Listener:
    """A gRPC server another user could run: it records each call's method and metadata, serves none."""

    def __init__(self, folder: Path):
        self.calls: list[tuple[str, dict]] = []
        calls = self.calls

        class Record(grpc.ServerInterceptor):
            def intercept_service(self, continuation, details):  # noqa: ANN001, ANN202
                calls.append((details.method, dict(details.invocation_metadata)))
                return continuation(details)

        self.server = grpc.server(futures.ThreadPoolExecutor(2), interceptors=[Record()])
        self.tcp = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.socket = folder / "listener.sock"
        self.server.add_insecure_port(f"unix:{self.socket}")
        self.server.start()

    def stop(self) -> list[tuple[str, dict]]:
        self.server.stop(None)
        return self.calls


def crafted_folder(parent: Path, **discovery_file: str) -> Path:
    """A runtime folder others may write into (0777), holding an engine.json of their choosing."""
    rdir = parent / "recast-x"
    rdir.mkdir()
    os.chmod(rdir, 0o777)
    (rdir / "engine.json").write_text(json.dumps({"pid": 1, **discovery_file}))
    return rdir


def private_folder(parent: Path) -> Path:
    rdir = parent / "run"
    rdir.mkdir(mode=0o700)
    return rdir


def foreign_folder(parent: Path) -> Path:
    """A folder of another user: made and handed over as root, else the root folder itself."""
    if os.getuid() != 0:
        return Path("/")
    folder = parent / "theirs"
    folder.mkdir(mode=0o700)
    os.chown(folder, OTHER_UID, OTHER_UID)
    return folder


def token_file(path: Path, mode: int = 0o600, text: str = "a-token-of-some-length-0123456789") -> Path:
    path.write_text(text + "\n")
    os.chmod(path, mode)
    return path


# --- item 2: the runtime folder -----------------------------------------------------------------------


def test_sdk_sends_nothing_to_a_folder_others_can_write(env, short, tmp_path):
    """/tmp/recast-UID pre-created by someone else, naming their port and any file of ours as the token."""
    listener = Listener(short)
    secret = token_file(tmp_path / "id_secret", 0o600, "first-line-of-a-secret-file")
    rdir = crafted_folder(short, tcp=listener.tcp, token_file=str(secret))
    env.setenv(discovery.ENV_RUNTIME_DIR, str(rdir))
    with pytest.raises(UntrustedPath) as exc:
        RecastClient.connect(wait=1.0)
    assert str(rdir) in exc.value.message and "RECAST_RUNTIME_DIR" in exc.value.message
    assert exc.value.code == "PERMISSION_DENIED"
    with pytest.raises(UntrustedPath):  # nor does it start a daemon there
        discovery.start_daemon(model=str(tmp_path / "no-model"), rdir=rdir, timeout=20)
    assert listener.stop() == []  # not one call, so no token and no media


def test_studio_calls_nothing_in_a_folder_others_can_write(env, short):
    listener = Listener(short)
    rdir = crafted_folder(short, socket=str(listener.socket))
    with pytest.raises(UntrustedPath, match=str(rdir)):
        connection.connect(EngineOptions(runtime_dir=rdir, start_if_missing=True))
    assert listener.stop() == []
    assert not (rdir / "engine.sock").exists()  # and started no engine there


def test_folder_of_another_user_or_a_link_is_refused(env, tmp_path):
    mine = private_folder(tmp_path)
    assert discovery.candidates(rdir=mine) == [Endpoint(f"unix:{mine / 'engine.sock'}", None, "default socket")]
    link = tmp_path / "link"
    link.symlink_to(mine)
    with pytest.raises(UntrustedPath, match="link"):
        discovery.candidates(rdir=link)
    theirs = foreign_folder(tmp_path)
    with pytest.raises(UntrustedPath, match="another user"):
        discovery.candidates(rdir=theirs)
    with pytest.raises(UntrustedPath, match="another user"):
        connection.discover(EngineOptions(runtime_dir=theirs))
    with pytest.raises(UntrustedPath, match="link"):
        connection.start_daemon(EngineOptions(runtime_dir=link, model=str(tmp_path / "no-model"), start_timeout=20))
    assert discovery.candidates(rdir=tmp_path / "missing")[0].target.endswith("missing/engine.sock")


def test_only_the_daemons_own_0600_token_in_its_folder_is_used(env, tmp_path, short):
    outside = token_file(tmp_path / "elsewhere.token")
    link_target = token_file(tmp_path / "target.token")
    cases = {"outside": outside, "0644": None, "link": None, "own": None}
    found = {}
    for name in cases:
        rdir = short / name
        rdir.mkdir(mode=0o700)
        if name == "0644":
            cases[name] = token_file(rdir / "engine.token", 0o644)
        elif name == "link":
            (rdir / "engine.token").symlink_to(link_target)
            cases[name] = rdir / "engine.token"
        elif name == "own":
            cases[name] = token_file(rdir / "engine.token")
        (rdir / "engine.json").write_text(json.dumps({"pid": 1, "tcp": "127.0.0.1:5055",
                                                      "token_file": str(cases[name])}))
        found[name] = [(c.target, c.token) for c in discovery.candidates(rdir=rdir) if not c.is_unix]
    assert found == {"outside": [], "0644": [], "link": [],
                     "own": [("127.0.0.1:5055", "a-token-of-some-length-0123456789")]}


def test_logs_are_never_written_through_a_link(env, tmp_path, short):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    rdir = private_folder(short)
    (rdir / "engine.log").symlink_to(victim)
    with pytest.raises(UntrustedPath, match="engine.log"):
        discovery.start_daemon(model=str(tmp_path / "no-model"), rdir=rdir, timeout=20)
    studio_log = short / "studio-engine.log"
    studio_log.symlink_to(victim)
    options = EngineOptions(runtime_dir=rdir, model=str(tmp_path / "no-model"), start_timeout=20)
    with pytest.raises(UntrustedPath, match="studio-engine.log"):
        connection.start_daemon(options, log_path=studio_log)
    assert victim.read_text() == "precious\n"


# --- item 11: token loaders ----------------------------------------------------------------------------


def _refusals(tmp_path: Path) -> dict[str, Path]:
    """Token files that must not be trusted, each with a good 0600 file's content."""
    good = token_file(tmp_path / "good.token")
    link = tmp_path / "link.token"
    link.symlink_to(good)
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o1777)  # like /tmp: anyone may add files
    folder = tmp_path / "a-folder"
    folder.mkdir(mode=0o700)
    out = {"symbolic link": link, "everyone may write": token_file(open_dir / "t.token"), "regular": folder}
    if os.getuid() == 0:
        theirs = token_file(tmp_path / "theirs.token")
        os.chown(theirs, OTHER_UID, OTHER_UID)
        out["another user"] = theirs
    return out


def test_sdk_token_loader_refuses_links_folders_and_open_folders(tmp_path):
    assert discovery.read_token(token_file(tmp_path / "mine.token", 0o640)) == "a-token-of-some-length-0123456789"
    for why, path in _refusals(tmp_path).items():
        with pytest.raises(UntrustedPath, match=why):
            discovery.read_token(path)
    with pytest.raises(UntrustedPath, match="0600"):  # the daemon's own token must be private
        discovery.read_token(tmp_path / "mine.token", private=True)


def test_daemon_token_loader_refuses_links_folders_and_open_folders(tmp_path):
    token = security.load_or_create_token(tmp_path / "engine.token")
    assert security.load_or_create_token(tmp_path / "engine.token") == token
    for why, path in _refusals(tmp_path).items():
        with pytest.raises(security.SecurityError, match=why):
            security.load_or_create_token(path)
    with pytest.raises(security.SecurityError, match="everyone may write"):  # nor creates one there
        security.load_or_create_token(tmp_path / "open" / "new.token")
    assert not (tmp_path / "open" / "new.token").exists()


# --- item 15: TLS, and the studio on the bridge's discovery ---------------------------------------------------


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, made with `cryptography`, else the openssl CLI."""
    cert, key = folder / "engine.crt", folder / "engine.key"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if not shutil.which("openssl"):
            pytest.skip("neither the cryptography package nor openssl is installed")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=recast test engine",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "recast test engine")])
    now = datetime.datetime.now(datetime.timezone.utc)
    built = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    os.chmod(key, 0o600)
    return cert, key


@pytest.fixture(scope="module")
def tls_daemon(tiny_model_dir, tmp_path_factory):
    cert, key = _self_signed(tmp_path_factory.mktemp("tls"))
    with InProcess(tiny_model_dir, listen="127.0.0.1:0", tls_cert=cert, tls_key=key) as d:
        d.ca = cert
        yield d


def test_sdk_cli_and_studio_reach_a_tls_daemon(tls_daemon, env, tmp_path, short):
    d = tls_daemon
    address, tokens = d.daemon.tcp_address, d.daemon.token_file
    with RecastClient.connect(address=address, token_file=tokens, tls_ca=d.ca) as client:
        assert client.endpoint.tls_ca == d.ca and client.info().pipeline_ready
        assert client.upload(write_target(tmp_path / "t.png")).kind == pb.ASSET_KIND_IMAGE  # a stream, over TLS
    with pytest.raises(errors.Unavailable):  # the same port without TLS gets nowhere
        RecastClient(Endpoint(address, "a-token-of-some-length-0123456789")).info()

    args = build_parser().parse_args(["json", "--address", address, "--token-file", str(tokens),
                                      "--tls-ca", str(d.ca), "--no-start"])
    with connector(args)() as client:
        assert client.info().pid == os.getpid()

    for name, value in ((discovery.ENV_ADDRESS, address), (discovery.ENV_TOKEN_FILE, str(tokens)),
                        (discovery.ENV_TLS_CA, str(d.ca))):
        env.setenv(name, value)
    engine = connection.connect(EngineOptions(runtime_dir=short / "none", start_if_missing=False))
    try:  # the studio's stubs pass no metadata: the channel itself carries the token
        assert engine.address == address and not engine.started_by_us
        assert engine.stub.GetEngineInfo(pb.GetEngineInfoRequest(), timeout=10).pid == os.getpid()
    finally:
        engine.close(stop_daemon=False)


def test_a_token_never_goes_to_a_remote_host_without_tls(env, tmp_path):
    tokens = token_file(tmp_path / "t.token")
    with pytest.raises(errors.InvalidArgument, match="not a loopback address.*TLS") as exc:
        RecastClient.connect(address="192.0.2.10:50051", token_file=tokens, wait=30)  # refused before connecting
    assert exc.value.field == "address" and "--tls-ca" in exc.value.message
    env.setenv(discovery.ENV_ADDRESS, "[2001:db8::1]:50051")
    env.setenv(discovery.ENV_TOKEN_FILE, str(tokens))
    with pytest.raises(errors.InvalidArgument, match="TLS"):
        RecastClient.connect(wait=30)
    with pytest.raises(errors.InvalidArgument, match="TLS"):
        connection.discover(EngineOptions(runtime_dir=tmp_path / "none"))
    ca = tmp_path / "ca.pem"
    assert discovery.candidates(tls_ca=ca)[0].tls_ca == ca  # with TLS the token may travel
    for local in ("127.0.0.1:1", "[::1]:1", "localhost:1"):
        assert Endpoint(local, "a-token").is_local


def test_studio_and_bridge_share_the_runtime_dir_variable(tls_daemon, env):
    rdir = tls_daemon.config.runtime_dir
    env.setenv(discovery.ENV_RUNTIME_DIR, str(rdir))
    env.setenv("XDG_RUNTIME_DIR", "/nonexistent")
    assert EngineOptions().runtime_dir == rdir == discovery.runtime_dir()
    engine = connection.connect(EngineOptions(start_if_missing=False))
    try:
        with RecastClient.connect() as client:
            assert engine.info.instance_id == client.info().instance_id
    finally:
        engine.close(stop_daemon=False)
