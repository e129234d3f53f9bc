"""The worker through Python a2a-sdk 0.3.x with its default client (the card's 0.3 top-level
fields: url, preferredTransport JSONRPC, protocolVersion 0.3.0): send, stream, get, cancel,
resubscribe, errors, failed runs, non-blocking send, one contextId throughout. Every answer on
the wire is also validated with the SDK's own pydantic models, and may hold no field they lack."""

import asyncio
import json
import uuid

import pytest

from a2a.client import ClientConfig, ClientFactory
from a2a.client.errors import A2AClientJSONRPCError
from a2a.client.transports.jsonrpc import JsonRpcTransport
from a2a.types import (
    AgentCard,
    CancelTaskResponse,
    GetTaskResponse,
    Message,
    MessageSendConfiguration,
    Part,
    Role,
    SendMessageResponse,
    SendStreamingMessageResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskIdParams,
    TaskNotCancelableError,
    TaskNotFoundError,
    TaskQueryParams,
    TaskState,
    TaskStatusUpdateEvent,
    TextPart,
)

from conftest import FRAMEWORKS_THAT_ASK, REFUND, REFUNDED, Worker, framework_worker, go, talker, unknown_keys

RESPONSE_MODEL = {
    "message/send": SendMessageResponse,
    "message/stream": SendStreamingMessageResponse,
    "tasks/resubscribe": SendStreamingMessageResponse,
    "tasks/get": GetTaskResponse,
    "tasks/cancel": CancelTaskResponse,
}
# The hybrid card's A2A 1.0 field, beside the 0.3 ones.
CARD_1_0_FIELDS = ("supportedInterfaces",)


@pytest.fixture(autouse=True)
def every_answer_fits_the_models(wire):
    yield
    checked = 0
    for ex in wire:
        for msg in ex.messages():
            if ex.method == "GET":
                card = AgentCard.model_validate(msg)
                known = card.model_dump(mode="json", by_alias=True, exclude_unset=True)
                extra = [k for k in unknown_keys(msg, known) if k.lstrip(".") not in CARD_1_0_FIELDS]
                assert extra == [], extra
            else:
                model = RESPONSE_MODEL[ex.rpc_method()].model_validate(msg)
                known = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
                assert unknown_keys(msg, known) == [], (unknown_keys(msg, known), msg)
            checked += 1
    assert checked > 0


def run(coro):
    return asyncio.run(coro)


def message(text, context_id=None):
    return Message(
        role=Role.user,
        message_id=str(uuid.uuid4()),
        parts=[Part(root=TextPart(text=text))],
        context_id=context_id,
    )


def text_of(parts):
    return "\n".join(p.root.text for p in parts)


async def collect(stream):
    """Every event as it arrived (the SDK updates one Task object in place as events come)."""
    out = []
    async for e in stream:
        if isinstance(e, tuple):
            e = (e[0].model_copy(deep=True), e[1])
        out.append(e)
    return out


async def connect(url, **config):
    return await ClientFactory.connect(url, ClientConfig(**config) if config else None)


def test_the_default_client_uses_the_0_3_fields_of_the_hybrid_card(worker):
    async def go():
        client = await connect(worker.url)
        assert type(client._transport) is JsonRpcTransport
        card = await client.get_card()
        assert card.url == worker.url
        assert card.preferred_transport == "JSONRPC"
        assert card.protocol_version == "0.3.0"
        assert card.capabilities.streaming
        await client.close()

    run(go())


def test_stream_sends_the_task_first_then_updates_then_the_final_state_and_closes(worker):
    async def go():
        client = await connect(worker.url)
        events = await collect(client.send_message(message("sleep 0.2")))
        await client.close()
        return events

    events = run(go())
    task, update = events[0]
    assert isinstance(task, Task) and update is None
    updates = [u for _, u in events[1:]]
    assert any(isinstance(u, TaskStatusUpdateEvent) and not u.final for u in updates)
    assert isinstance(updates[-2], TaskArtifactUpdateEvent)
    assert text_of(updates[-2].artifact.parts) == "slept"
    last = updates[-1]
    assert isinstance(last, TaskStatusUpdateEvent) and last.final
    assert last.status.state == TaskState.completed
    for u in updates:
        assert u.task_id == task.id and u.context_id == task.context_id
    final_task = events[-1][0]
    assert final_task.status.state == TaskState.completed


def test_a_stream_quiet_for_longer_than_the_sdks_read_timeout_still_ends_completed(worker):
    # httpx's default 5 s read timeout is shorter than the worker's default 10 s heartbeat:
    # the stream's keep-alive comments carry it.
    async def go():
        client = await connect(worker.url)
        events = await collect(client.send_message(message("sleep 6")))
        await client.close()
        return events

    events = run(go())
    assert events[-1][1].final and events[-1][1].status.state == TaskState.completed


def test_a_blocking_send_answers_the_reference_message_and_get_has_the_task(worker):
    async def go():
        client = await connect(worker.url, streaming=False)
        [answer] = await collect(client.send_message(message("sleep 0.1")))
        assert isinstance(answer, Message)
        assert text_of(answer.parts) == "slept"
        assert answer.metadata["ok"] is True
        got = await client.get_task(TaskQueryParams(id=answer.task_id))
        assert got.status.state == TaskState.completed
        assert got.context_id == answer.context_id
        assert text_of(got.artifacts[0].parts) == "slept"
        short = await client.get_task(TaskQueryParams(id=answer.task_id, history_length=0))
        assert not short.history
        await client.close()

    run(go())


def test_cancel_stops_a_running_task_and_a_finished_one_is_not_cancelable(worker):
    async def go():
        client = await connect(worker.url)
        stream = client.send_message(message("sleep 30"))
        task, _ = await anext(stream)
        canceled = await client.cancel_task(TaskIdParams(id=task.id))
        assert canceled.status.state == TaskState.canceled
        rest = await collect(stream)
        assert rest[-1][1].final and rest[-1][1].status.state == TaskState.canceled
        with pytest.raises(A2AClientJSONRPCError) as e:
            await client.cancel_task(TaskIdParams(id=task.id))
        # The SDK reads every error as a JSONRPCError; the code is the not-cancelable one.
        TaskNotCancelableError.model_validate(e.value.error.model_dump())
        await client.close()

    run(go())


def test_resubscribe_joins_a_running_task_task_first_until_its_end(worker):
    async def go():
        client = await connect(worker.url)
        stream = client.send_message(message("sleep 30"))
        task, _ = await anext(stream)
        other = await connect(worker.url)
        joined = other.resubscribe(TaskIdParams(id=task.id))
        now, update = await anext(joined)
        assert update is None and now.id == task.id
        assert now.status.state == TaskState.working
        assert now.context_id == task.context_id
        await client.cancel_task(TaskIdParams(id=task.id))
        rest = await collect(joined)
        assert rest[-1][1].final and rest[-1][1].status.state == TaskState.canceled
        assert all(u.context_id == task.context_id for _, u in rest)
        await collect(stream)
        with pytest.raises(A2AClientJSONRPCError) as e:
            await collect(other.resubscribe(TaskIdParams(id=task.id)))
        assert e.value.error.code == -32602
        await other.close()
        await client.close()

    run(go())


def test_an_unknown_task_id_is_the_sdks_not_found_error(worker):
    async def go():
        client = await connect(worker.url)
        for call in (
            client.get_task(TaskQueryParams(id="no-such-task")),
            client.cancel_task(TaskIdParams(id="no-such-task")),
            collect(client.resubscribe(TaskIdParams(id="no-such-task"))),
        ):
            with pytest.raises(A2AClientJSONRPCError) as e:
                await call
            # The SDK reads every error as a JSONRPCError; the code is the not-found one.
            TaskNotFoundError.model_validate(e.value.error.model_dump())
        await client.close()

    run(go())


def test_a_failed_run_reads_as_failed_with_the_error(worker):
    async def go():
        client = await connect(worker.url)
        events = await collect(client.send_message(message("explode")))
        task, last = events[-1]
        assert last.final and last.status.state == TaskState.failed
        assert "explode" in text_of(last.status.message.parts)
        assert task.status.state == TaskState.failed
        got = await client.get_task(TaskQueryParams(id=task.id))
        assert got.status.state == TaskState.failed
        blocking = await connect(worker.url, streaming=False)
        [answer] = await collect(blocking.send_message(message("explode again")))
        # The reference worker's message: never an empty success.
        assert "explode again" in text_of(answer.parts)
        assert answer.metadata["ok"] is False
        await blocking.close()
        await client.close()

    run(go())


def test_a_non_blocking_send_answers_at_once_with_the_working_task(worker):
    async def go():
        client = await connect(worker.url, streaming=False)
        # Blocking, this would wait 30 s and the SDK's HTTP client would time out first.
        [answer] = await collect(
            client.send_message(message("sleep 30"), configuration=MessageSendConfiguration(blocking=False))
        )
        task, _ = answer
        assert isinstance(task, Task)
        assert task.status.state == TaskState.working
        got = await client.get_task(TaskQueryParams(id=task.id))
        assert got.status.state == TaskState.working and got.context_id == task.context_id
        canceled = await client.cancel_task(TaskIdParams(id=task.id))
        assert canceled.status.state == TaskState.canceled
        await client.close()

    run(go())


def test_one_context_id_throughout_and_a_follow_up_continues_the_session(worker):
    async def go():
        client = await connect(worker.url)
        first = await collect(client.send_message(message("turn")))
        task = first[0][0]
        context = task.context_id
        assert context
        for t, u in first:
            assert t.context_id == context
            assert u is None or u.context_id == context
        got = await client.get_task(TaskQueryParams(id=task.id))
        assert got.context_id == context
        second = await collect(client.send_message(message("turn", context_id=context)))
        follow_up, artifact = second[-2]
        assert follow_up.context_id == context and follow_up.id != task.id
        turn = json.loads(text_of(artifact.artifact.parts))
        assert turn["session"] == context
        assert turn["earlier"] == [task.id]
        await client.close()

    run(go())


def test_live_text_arrives_as_artifact_updates_appended_to_one_artifact(tmp_path):
    w = Worker(talker(tmp_path, ["Hel", "lo, ", "world"]))

    async def go_on():
        client = await connect(w.url)
        pieces, final = [], None
        async for e in client.send_message(message("hi")):
            if not isinstance(e, tuple):
                continue
            task, u = e
            if isinstance(u, TaskArtifactUpdateEvent) and u.artifact.name == "message":
                pieces.append((bool(u.append), text_of(u.artifact.parts), u.artifact.artifact_id))
                # The next piece is written only once this one arrived.
                go(tmp_path, len(pieces) - 1)
            final = task.model_copy(deep=True)
        await client.close()
        return pieces, final

    try:
        pieces, final = run(go_on())
    finally:
        w.stop()
        w.tmp.cleanup()
    assert [(a, t) for a, t, _ in pieces] == [(False, "Hel"), (True, "lo, "), (True, "world")]
    assert len({i for _, _, i in pieces}) == 1
    # The SDK's task holds the text as written, beside the output artifact.
    [art] = [a for a in final.artifacts if a.name == "message"]
    assert "".join(p.root.text for p in art.parts) == "Hello, world"
    assert final.status.state == TaskState.completed


def test_a_task_that_asks_is_input_required_and_a_follow_up_with_its_ids_answers_it(worker):
    from a2a.types import DataPart

    async def go():
        client = await connect(worker.url)
        events = await collect(client.send_message(message("ask")))
        task = events[-1][0]
        assert task.status.state == TaskState.input_required, events
        parts = task.status.message.parts
        assert "refund" in parts[0].root.text
        assert parts[1].root.data["interrupts"][0]["id"] == "refund-1"
        follow = Message(
            role=Role.user,
            message_id=str(uuid.uuid4()),
            parts=[Part(root=DataPart(data={"resume": {"approved": True}}))],
            context_id=task.context_id,
            task_id=task.id,
        )
        answer = await collect(client.send_message(follow))
        final = answer[-1][0]
        assert final.status.state == TaskState.completed, answer
        assert json.loads(text_of(final.status.message.parts))["refunded"] is True
        await client.close()

    run(go())


@pytest.mark.parametrize("framework", FRAMEWORKS_THAT_ASK)
def test_each_frameworks_agent_asks_and_a_follow_up_yes_runs_its_refund_under_the_same_task(framework):
    w = framework_worker(framework)

    async def go_on():
        client = await connect(w.url)
        asked = await collect(client.send_message(message(REFUND)))
        task = asked[-1][0]
        assert task.status.state == TaskState.input_required, asked
        question = task.status.message.parts[1].root.data["interrupts"][0]
        assert question["tool"] == "refund" and question["kind"] == "approval", question
        follow = Message(
            role=Role.user,
            message_id=str(uuid.uuid4()),
            parts=[Part(root=TextPart(text="yes"))],
            context_id=task.context_id,
            task_id=task.id,
        )
        answer = await collect(client.send_message(follow))
        await client.close()
        return task.id, answer

    try:
        task_id, answer = run(go_on())
    finally:
        w.stop()
        w.tmp.cleanup()
    assert {t.id for t, _ in answer} == {task_id}, answer
    final = answer[-1][0]
    assert final.status.state == TaskState.completed, answer
    assert REFUNDED in text_of(final.status.message.parts), answer
