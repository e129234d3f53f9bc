"""The worker through Python a2a-sdk 1.x with its default client (the card's A2A 1.0 JSON-RPC
interface): send, stream, get, list, cancel, subscribe, errors, failed runs, non-blocking send,
one contextId throughout. Every answer on the wire is also parsed strictly (no unknown field)
into the SDK's own protobuf models."""

import asyncio
import json
import uuid

import pytest
from google.protobuf import json_format

from a2a.client import ClientConfig, create_client
from a2a.client.card_resolver import parse_agent_card
from a2a.client.transports.jsonrpc import JsonRpcTransport
from a2a.types import a2a_pb2 as pb
from a2a.utils.errors import TaskNotCancelableError, TaskNotFoundError, UnsupportedOperationError

from conftest import FRAMEWORKS_THAT_ASK, REFUND, REFUNDED, Worker, framework_worker, go, talker

RESULT_MODEL = {
    "SendMessage": pb.SendMessageResponse,
    "SendStreamingMessage": pb.StreamResponse,
    "SubscribeToTask": pb.StreamResponse,
    "GetTask": pb.Task,
    "CancelTask": pb.Task,
    "ListTasks": pb.ListTasksResponse,
}
# The hybrid card's A2A 0.3 fields, beside the 1.0 ones.
CARD_03_FIELDS = ("url", "preferredTransport", "protocolVersion")

COMPLETED = pb.TaskState.TASK_STATE_COMPLETED
WORKING = pb.TaskState.TASK_STATE_WORKING
FAILED = pb.TaskState.TASK_STATE_FAILED
CANCELED = pb.TaskState.TASK_STATE_CANCELED


@pytest.fixture(autouse=True)
def every_answer_fits_the_models(wire):
    yield
    checked = 0
    for ex in wire:
        for msg in ex.messages():
            if ex.method == "GET":
                card = dict(msg)
                parse_agent_card(dict(card))
                for k in CARD_03_FIELDS:
                    card.pop(k, None)
                json_format.ParseDict(card, pb.AgentCard())
            else:
                assert msg["jsonrpc"] == "2.0" and msg["id"] == ex.request["id"], msg
                if "error" in msg:
                    assert isinstance(msg["error"]["code"], int) and msg["error"]["message"], msg
                else:
                    json_format.ParseDict(msg["result"], RESULT_MODEL[ex.rpc_method()]())
            checked += 1
    assert checked > 0


def run(coro):
    return asyncio.run(coro)


def message(text, context_id=None):
    m = pb.Message(role=pb.Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=[pb.Part(text=text)])
    if context_id:
        m.context_id = context_id
    return pb.SendMessageRequest(message=m)


def text_of(parts):
    return "\n".join(p.text for p in parts)


async def collect(stream):
    return [e async for e in stream]


def kind(event):
    return event.WhichOneof("payload")


def test_the_default_client_picks_the_1_0_interface_of_the_hybrid_card(worker):
    async def go():
        client = await create_client(worker.url)
        assert type(client._transport) is JsonRpcTransport
        card = await client.get_extended_agent_card(pb.GetExtendedAgentCardRequest())
        versions = sorted(i.protocol_version for i in card.supported_interfaces)
        assert versions == ["0.3", "1.0"]
        assert all(i.url == worker.url for i in card.supported_interfaces)
        assert card.capabilities.streaming
        assert card.skills[0].id == "agentdispatch.agent.run"
        await client.close()

    run(go())


def test_stream_sends_the_task_first_then_updates_then_the_terminal_state_and_closes(worker):
    async def go():
        client = await create_client(worker.url)
        events = await collect(client.send_message(message("sleep 0.2")))
        await client.close()
        return events

    events = run(go())
    assert kind(events[0]) == "task"
    task = events[0].task
    assert task.status.state == WORKING
    kinds = [kind(e) for e in events]
    assert "status_update" in kinds[1:-1]
    assert kinds[-2:] == ["artifact_update", "status_update"]
    last = events[-1].status_update
    assert last.status.state == COMPLETED
    assert text_of(events[-2].artifact_update.artifact.parts) == "slept"
    for e in events[1:]:
        update = getattr(e, kind(e))
        assert update.task_id == task.id
        assert update.context_id == task.context_id
    # The stream ended (collect returned) right after the terminal state.


def test_a_stream_quiet_for_longer_than_the_sdks_read_timeout_still_ends_completed(worker):
    # httpx's default 5 s read timeout is shorter than the worker's default 10 s heartbeat:
    # the stream's keep-alive comments carry it.
    async def go():
        client = await create_client(worker.url)
        events = await collect(client.send_message(message("sleep 6")))
        await client.close()
        return events

    events = run(go())
    assert events[-1].status_update.status.state == COMPLETED


def test_send_without_streaming_blocks_until_the_task_is_completed_and_get_agrees(worker):
    async def go():
        client = await create_client(worker.url, ClientConfig(streaming=False))
        [answer] = await collect(client.send_message(message("sleep 0.1")))
        assert kind(answer) == "task"
        task = answer.task
        assert task.status.state == COMPLETED
        assert text_of(task.artifacts[0].parts) == "slept"
        assert text_of(task.status.message.parts) == "slept"
        assert task.status.message.role == pb.Role.ROLE_AGENT
        got = await client.get_task(pb.GetTaskRequest(id=task.id))
        assert got.status.state == COMPLETED
        assert got.context_id == task.context_id
        assert text_of(got.artifacts[0].parts) == "slept"
        assert len(got.history) >= 1
        none = await client.get_task(pb.GetTaskRequest(id=task.id, history_length=0))
        assert len(none.history) == 0
        await client.close()

    run(go())


def test_cancel_stops_a_running_task_and_a_finished_one_is_not_cancelable(worker):
    async def go():
        client = await create_client(worker.url)
        stream = client.send_message(message("sleep 30"))
        first = await anext(stream)
        task_id = first.task.id
        canceled = await client.cancel_task(pb.CancelTaskRequest(id=task_id))
        assert canceled.status.state == CANCELED
        rest = await collect(stream)
        assert rest[-1].status_update.status.state == CANCELED
        with pytest.raises(TaskNotCancelableError):
            await client.cancel_task(pb.CancelTaskRequest(id=task_id))
        await client.close()

    run(go())


def test_subscribe_joins_a_running_task_task_first_until_its_end(worker):
    async def go():
        client = await create_client(worker.url)
        stream = client.send_message(message("sleep 30"))
        first = await anext(stream)
        task_id = first.task.id
        other = await create_client(worker.url)
        joined = other.subscribe(pb.SubscribeToTaskRequest(id=task_id))
        now = await anext(joined)
        assert kind(now) == "task"
        assert now.task.id == task_id
        assert now.task.status.state == WORKING
        assert now.task.context_id == first.task.context_id
        await client.cancel_task(pb.CancelTaskRequest(id=task_id))
        rest = await collect(joined)
        assert rest[-1].status_update.status.state == CANCELED
        assert all(getattr(e, kind(e)).context_id == first.task.context_id for e in rest)
        await collect(stream)
        with pytest.raises(UnsupportedOperationError):
            await collect(other.subscribe(pb.SubscribeToTaskRequest(id=task_id)))
        await other.close()
        await client.close()

    run(go())


def test_an_unknown_task_id_is_the_sdks_not_found_error(worker):
    async def go():
        client = await create_client(worker.url)
        with pytest.raises(TaskNotFoundError):
            await client.get_task(pb.GetTaskRequest(id="no-such-task"))
        with pytest.raises(TaskNotFoundError):
            await client.cancel_task(pb.CancelTaskRequest(id="no-such-task"))
        with pytest.raises(TaskNotFoundError):
            await collect(client.subscribe(pb.SubscribeToTaskRequest(id="no-such-task")))
        await client.close()

    run(go())


def test_a_failed_run_reads_as_failed_with_the_error(worker):
    async def go():
        client = await create_client(worker.url)
        events = await collect(client.send_message(message("explode")))
        last = events[-1].status_update
        assert last.status.state == FAILED
        assert "explode" in text_of(last.status.message.parts)
        got = await client.get_task(pb.GetTaskRequest(id=last.task_id))
        assert got.status.state == FAILED
        assert "explode" in text_of(got.status.message.parts)
        blocking = await create_client(worker.url, ClientConfig(streaming=False))
        [answer] = await collect(blocking.send_message(message("explode again")))
        assert answer.task.status.state == FAILED
        await blocking.close()
        await client.close()

    run(go())


def test_a_non_blocking_send_answers_at_once_with_the_working_task(worker):
    async def go():
        client = await create_client(worker.url, ClientConfig(streaming=False))
        request = message("sleep 30")
        request.configuration.return_immediately = True
        # Blocking, this would wait 30 s and the SDK's HTTP client would time out first.
        [answer] = await collect(client.send_message(request))
        task = answer.task
        assert task.status.state == WORKING
        got = await client.get_task(pb.GetTaskRequest(id=task.id))
        assert got.status.state == WORKING
        assert got.context_id == task.context_id
        canceled = await client.cancel_task(pb.CancelTaskRequest(id=task.id))
        assert canceled.status.state == CANCELED
        await client.close()

    run(go())


def test_one_context_id_throughout_and_a_follow_up_continues_the_session(worker):
    async def go():
        client = await create_client(worker.url)
        first = await collect(client.send_message(message("turn")))
        context = first[0].task.context_id
        assert context
        for e in first:
            assert getattr(e, kind(e)).context_id == context
        first_task = first[0].task.id
        got = await client.get_task(pb.GetTaskRequest(id=first_task))
        assert got.context_id == context
        second = await collect(client.send_message(message("turn", context_id=context)))
        assert second[0].task.context_id == context
        assert second[0].task.id != first_task
        turn = json.loads(text_of(second[-2].artifact_update.artifact.parts))
        assert turn["session"] == context
        assert turn["earlier"] == [first_task]
        listed = await client.list_tasks(pb.ListTasksRequest(context_id=context))
        assert {t.id for t in listed.tasks} == {first_task, second[0].task.id}
        assert listed.total_size == 2
        assert listed.next_page_token == ""
        assert all(t.context_id == context for t in listed.tasks)
        await client.close()

    run(go())


def test_live_text_arrives_as_artifact_updates_appended_to_one_artifact(tmp_path):
    w = Worker(talker(tmp_path, ["Hel", "lo, ", "world"]))

    async def go_on():
        client = await create_client(w.url)
        pieces, kinds = [], []
        async for e in client.send_message(message("hi")):
            kinds.append(kind(e))
            if kind(e) == "artifact_update" and e.artifact_update.artifact.name == "message":
                u = e.artifact_update
                pieces.append((u.append, text_of(u.artifact.parts), u.artifact.artifact_id))
                # The next piece is written only once this one arrived.
                go(tmp_path, len(pieces) - 1)
        await client.close()
        return pieces, kinds

    try:
        pieces, kinds = run(go_on())
    finally:
        w.stop()
        w.tmp.cleanup()
    assert [(a, t) for a, t, _ in pieces] == [(False, "Hel"), (True, "lo, "), (True, "world")]
    assert len({i for _, _, i in pieces}) == 1
    assert kinds[-2:] == ["artifact_update", "status_update"]


def test_a_task_that_asks_is_input_required_and_a_follow_up_with_its_ids_answers_it(worker):
    async def go():
        client = await create_client(worker.url)
        events = await collect(client.send_message(message("ask")))
        task = events[-1].status_update if kind(events[-1]) == "status_update" else events[-1].task
        state = task.status.state
        assert state == pb.TaskState.TASK_STATE_INPUT_REQUIRED, events
        task_id = task.task_id if kind(events[-1]) == "status_update" else task.id
        asked = json_format.MessageToDict(task.status.message)
        assert "refund" in asked["parts"][0]["text"], asked
        assert asked["parts"][1]["data"]["interrupts"][0]["id"] == "refund-1", asked
        follow = message("yes", context_id=task.context_id)
        follow.message.task_id = task_id
        answer = await collect(client.send_message(follow))
        last = answer[-1]
        final = last.status_update if kind(last) == "status_update" else last.task
        assert final.status.state == COMPLETED, answer
        assert json.loads(text_of(final.status.message.parts))["refunded"] is True
        await client.close()

    run(go())


def task_of(event):
    """The task an event names: (its id, context, state, status message)."""
    t = event.status_update if kind(event) == "status_update" else event.task
    tid = t.task_id if kind(event) == "status_update" else t.id
    return tid, t.context_id, t.status.state, t.status.message


@pytest.mark.parametrize("framework", FRAMEWORKS_THAT_ASK)
def test_each_frameworks_agent_asks_and_a_follow_up_yes_runs_its_refund_under_the_same_task(framework):
    w = framework_worker(framework)

    async def go_on():
        client = await create_client(w.url)
        asked = await collect(client.send_message(message(REFUND)))
        task_id, context, state, said = task_of(asked[-1])
        assert state == pb.TaskState.TASK_STATE_INPUT_REQUIRED, asked
        question = json_format.MessageToDict(said)["parts"][1]["data"]["interrupts"][0]
        assert question["tool"] == "refund" and question["kind"] == "approval", question
        follow = message("yes", context_id=context)
        follow.message.task_id = task_id
        answer = await collect(client.send_message(follow))
        await client.close()
        return task_id, answer

    try:
        task_id, answer = run(go_on())
    finally:
        w.stop()
        w.tmp.cleanup()
    # The answering run is the same task to the client, from its first event to its end.
    assert {task_of(e)[0] for e in answer if kind(e) in ("task", "status_update")} == {task_id}
    _, _, state, said = task_of(answer[-1])
    assert state == COMPLETED, answer
    assert REFUNDED in text_of(said.parts), answer
