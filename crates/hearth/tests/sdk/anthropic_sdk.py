"""The real `anthropic` SDK against `hearth gateway run` (messages, streaming and not).

Env: HEARTH_BASE (gateway origin), HEARTH_MODEL (backed by llama-server).
"""
import os

import anthropic

client = anthropic.Anthropic(base_url=os.environ["HEARTH_BASE"], api_key=os.environ.get("HEARTH_TOKEN", "none"), max_retries=0)
model = os.environ["HEARTH_MODEL"]

message = client.messages.create(model=model, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
assert message.type == "message" and message.role == "assistant", message
assert message.content and message.content[-1].type == "text" and message.content[-1].text, message
assert message.stop_reason in ("end_turn", "max_tokens"), message.stop_reason
assert message.usage.output_tokens > 0

with client.messages.stream(model=model, max_tokens=8, messages=[{"role": "user", "content": "hi"}]) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
assert text and final.content[-1].text == text, (text, final)

count = client.messages.count_tokens(model=model, messages=[{"role": "user", "content": "hello there"}])
assert count.input_tokens > 0
# Server tools (Anthropic's web search) through an Anthropic upstream: the SDK's own types for
# the blocks, in place, streaming and not (the upstream is scripted with the documented events).
server_model = os.environ.get("HEARTH_SERVER_TOOL_MODEL")
if server_model:
    tools = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]
    ask = [{"role": "user", "content": "Weather in NYC?"}]
    with client.messages.stream(model=server_model, max_tokens=1024, tools=tools, messages=ask) as stream:
        final = stream.get_final_message()
    kinds = [b.type for b in final.content]
    assert kinds == ["text", "server_tool_use", "web_search_tool_result", "text"], kinds
    assert final.content[1].input == {"query": "weather NYC today"}, final.content[1]
    assert final.content[2].content[0].url == "https://www.weather.gov/okx/", final.content[2]
    message = client.messages.create(model=server_model, max_tokens=1024, tools=tools, messages=ask)
    assert [b.type for b in message.content] == kinds, message.content
    assert message.content[1].input == {"query": "weather NYC today"}, message.content[1]
print("anthropic sdk: ok")
