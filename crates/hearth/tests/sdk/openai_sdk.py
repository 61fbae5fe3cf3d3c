"""The real `openai` SDK against `hearth gateway run`.

Env: HEARTH_BASE (gateway origin), HEARTH_MODEL (backed by llama-server), HEARTH_TOOL_MODEL
(backed by a scripted upstream that calls a tool, then answers).
"""
import json
import os

import openai

base = os.environ["HEARTH_BASE"]
model = os.environ["HEARTH_MODEL"]
tool_model = os.environ["HEARTH_TOOL_MODEL"]
client = openai.OpenAI(base_url=f"{base}/v1", api_key=os.environ.get("HEARTH_TOKEN", "none"), max_retries=0)

# Chat completions, not streaming: the SDK validates the shape.
completion = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=8)
assert completion.object == "chat.completion", completion
assert isinstance(completion.choices[0].message.content, str) and completion.choices[0].message.content
assert completion.usage is not None and completion.usage.completion_tokens > 0

# Chat completions, streaming with usage.
chunks = list(
    client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=8, stream=True,
        stream_options={"include_usage": True},
    )
)
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
assert text, chunks
assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
assert any(c.choices and c.choices[0].finish_reason for c in chunks)

# Responses, not streaming.
response = client.responses.create(model=model, input="hi", instructions="be brief", max_output_tokens=8)
assert response.output_text, response
assert response.status in ("completed", "incomplete"), response.status

# Responses, streaming with the SDK's stream helper (needs output_index/content_index). The tiny
# model is cut at max_output_tokens, so the stream ends with `response.incomplete` (as OpenAI's
# does), which `get_final_response()` refuses; the last event carries the final response.
with client.responses.stream(model=model, input="hi", max_output_tokens=8) as stream:
    events = list(stream)
deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
assert events[-1].type in ("response.completed", "response.incomplete"), events[-1]
final = events[-1].response
assert "".join(deltas) == final.output_text and final.output_text, (deltas, final)

# Responses, raw streaming events.
events = list(client.responses.create(model=model, input="hi", max_output_tokens=8, stream=True))
assert events[0].type == "response.created" and events[-1].type in ("response.completed", "response.incomplete")
assert [e.sequence_number for e in events] == list(range(len(events)))

# A function tool round trip (the scripted upstream calls the tool, then answers).
tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
messages = [{"role": "user", "content": "Weather in Paris?"}]
first = client.chat.completions.create(model=tool_model, messages=messages, tools=tools)
call = first.choices[0].message.tool_calls[0]
assert first.choices[0].finish_reason == "tool_calls"
assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
messages.append(first.choices[0].message.model_dump(exclude_none=True))
messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"})
second = client.chat.completions.create(model=tool_model, messages=messages, tools=tools)
assert second.choices[0].message.content == "It is sunny in Paris.", second

# Models.
ids = [m.id for m in client.models.list()]
assert "hearth" in ids and model in ids, ids

# Errors arrive as the SDK's typed exceptions.
try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise AssertionError("expected NotFoundError")
except openai.NotFoundError:
    pass
print("openai sdk: ok")
