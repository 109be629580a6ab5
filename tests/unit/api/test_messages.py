"""The rows of `cm list --json`: one shape (``summary_row``), whichever way they travel."""

import json

from hypothesis import given
from hypothesis import strategies as st

from component_manager._generated import manager_pb2 as pb
from component_manager.api.messages import summary_dict, summary_json, summary_row

TEXT = st.text(max_size=30)  # any text: quotes, newlines, control characters, astral planes
FIELDS = st.fixed_dictionaries(
    {"moniker": TEXT, "url": TEXT, "instance_id": TEXT, "state": TEXT, "execution_state": TEXT, "status": TEXT},
    optional={"incarnation": st.integers(0, 2**32), "pid": st.integers(0, 2**31 - 1), "last_stop_reason": TEXT,
              "last_stop_disposition": TEXT, "status_detail": TEXT, "node": TEXT})


@given(FIELDS)
def test_the_query_sockets_json_row_is_json_dumps_of_the_row(fields):
    assert summary_json(fields) == json.dumps(summary_row(fields))


@given(FIELDS)
def test_a_grpc_client_makes_the_same_row_from_the_message(fields):
    assert summary_dict(pb.InstanceSummary(**fields)) == summary_row(fields)


def test_a_row_has_none_where_a_field_is_at_its_default():
    row = summary_row({"moniker": "/a", "status": "stopped", "pid": 0, "last_stop_reason": ""})
    assert (row["pid"], row["last_stop_reason"], row["status_detail"]) == (None, None, "stopped")
