"""The query socket's client side: a whole answer, or Unanswered (and `cm` asks gRPC)."""

import socket
import threading

import pytest

from component_manager.api.query_wire import QUERY_SOCKET, Unanswered, ask

pytestmark = pytest.mark.timeout(30)


def answering(tmp_path, answer: bytes):
    """A socket at tmp_path/query.sock that reads one request line, writes ``answer`` and
    closes; the request it read."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / QUERY_SOCKET))
    server.listen(1)
    seen = []

    def serve():
        connection, _ = server.accept()
        with connection, connection.makefile("rb") as reader:
            seen.append(reader.readline())
            connection.sendall(answer)
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return seen


def test_a_whole_answer_is_its_header_and_body(tmp_path):
    seen = answering(tmp_path, b'{"length": 5}\nhello')
    assert ask(str(tmp_path), {"method": "GetInstance", "moniker": "/a"}, 10) == ({"length": 5}, b"hello")
    assert seen == [b'{"method": "GetInstance", "moniker": "/a"}\n']


def test_an_error_answer_has_no_body(tmp_path):
    answering(tmp_path, b'{"error": "instance \'/a\' not found", "code": "NOT_FOUND", "type": "InstanceNotFound"}\n')
    header, body = ask(str(tmp_path), {"method": "GetInstance", "moniker": "/a"}, 10)
    assert (header["code"], body) == ("NOT_FOUND", b"")


@pytest.mark.parametrize("answer", [b"", b'{"length": 10}\nhello', b'{"length": 5', b"not json\n", b"[1]\n",
                                    b'{"length": -1}\n', b'{"error": "no code"}\n'])
def test_anything_less_is_unanswered(tmp_path, answer):
    answering(tmp_path, answer)
    with pytest.raises(Unanswered):
        ask(str(tmp_path), {"method": "ListInstances"}, 10)


def test_no_socket_is_unanswered(tmp_path):
    with pytest.raises(Unanswered):
        ask(str(tmp_path), {"method": "ListInstances"}, 10)
