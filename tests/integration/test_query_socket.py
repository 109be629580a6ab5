"""The query socket (``query.sock``): `cm list`, `cm tree`, `cm show` and `cm logs` read the
manager through it, without grpc; where it does not answer they ask gRPC and print the same.
A real manager on the example realm, the real `cm`."""

from __future__ import annotations

import socket
import stat
import time

import grpc
import pytest

from component_manager._generated import manager_pb2, manager_pb2_grpc
from component_manager.api.messages import show_dict, summary_dict
from component_manager.api.query_wire import MAX_REQUEST, QUERY_SOCKET, ask
from component_manager.cli.client import CHANNEL_OPTIONS
from component_manager.cli.reads import rows_of
from component_manager.testing.process import ManagerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

READS = [("list",), ("list", "--json"), ("tree",), ("tree", "--json"), ("show", "server"), ("show", "/echo_server", "--json"),
         ("logs", "counter", "--json"), ("show", "/flaky", "--json")]


def outputs(manager: ManagerProcess) -> list[tuple[int, str, str]]:
    runs = [manager.cm(*args, check=False) for args in [*READS, ("show", "/nothing"), ("show", "/nothing", "--json")]]
    return [(r.returncode, r.stdout, r.stderr) for r in runs]


def test_reads_print_the_same_with_the_query_socket_without_it_and_with_a_stale_one(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("start", "/counter")  # a pid in the list
        path = manager.state_dir / QUERY_SOCKET
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        via_socket = outputs(manager)
        assert via_socket[-2][:2] == (4, "") and via_socket[-2][2] == "cm: instance '/nothing' not found\n"

        path.rename(path.with_name("away.sock"))  # as a manager from before the query socket
        assert outputs(manager) == via_socket

        with socket.socket(socket.AF_UNIX) as stale:  # bound, never listening: refused
            stale.bind(str(path))
            assert outputs(manager) == via_socket


def test_the_query_socket_answers_what_realmquery_answers(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("start", "/counter")
        with grpc.insecure_channel(f"unix:{manager.state_dir / 'manager.sock'}", options=CHANNEL_OPTIONS) as channel:
            query = manager_pb2_grpc.RealmQueryStub(channel)
            listed = query.ListInstances(manager_pb2.ListInstancesRequest(), timeout=30).instances
            _, body = ask(str(manager.state_dir), {"method": "ListInstances"}, 30)
            assert rows_of(body) == [summary_dict(s) for s in listed]
            _, body = ask(str(manager.state_dir), {"method": "ListInstances", "prefix": "/counter"}, 30)
            assert [row["moniker"] for row in rows_of(body)] == ["/counter"]
            for moniker in ("/", "/echo_server", "/flaky"):  # not running: nothing in them moves
                reply = query.GetInstance(manager_pb2.InstanceRequest(moniker=moniker), timeout=30)
                header, body = ask(str(manager.state_dir), {"method": "GetInstance", "moniker": moniker}, 30)
                assert header == {"length": len(body)}
                assert rows_of(body) == [show_dict(reply)]


def raw(manager: ManagerProcess, data: bytes) -> bytes:
    """What the query socket answers to ``data``, up to its closing the connection."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(manager.state_dir / QUERY_SOCKET))
        try:
            sock.sendall(data)
        except BrokenPipeError:  # it answered and closed before it had read everything
            pass
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_bad_requests_get_one_line_and_the_manager_keeps_answering(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        idle = socket.socket(socket.AF_UNIX)  # connects and says nothing: blocks nobody
        idle.connect(str(manager.state_dir / QUERY_SOCKET))
        answers = {
            b"not json\n": b'"code": "INVALID_ARGUMENT"',
            b"[1, 2]\n": b'"code": "INVALID_ARGUMENT"',
            b'{"method": "GetInstance", "moniker": 7}\n': b"moniker must be a string",
            b'{"method": "GetInstance", "moniker": "no slash"}\n': b'"code": "INVALID_ARGUMENT"',
            b'{"method": "GetInstance", "moniker": "/x\\u0000"}\n': b'"code": ',
            b'{"method": "Stop", "moniker": "/counter"}\n': b'"code": "UNIMPLEMENTED"',
            b"x" * (MAX_REQUEST + 10): f"at most {MAX_REQUEST} bytes".encode(),
        }
        for request, expected in answers.items():
            answer = raw(manager, request)
            assert answer.count(b"\n") == 1 and expected in answer, (request[:60], answer)
        t0 = time.monotonic()
        assert ask(str(manager.state_dir), {"method": "GetInstance", "moniker": "/"}, 30)[0]["length"] > 0
        assert time.monotonic() - t0 < 5  # not behind the idle client
        idle.close()
        assert manager.cm("show", "/counter").returncode == 0
        assert "Traceback" not in manager.log_text()
