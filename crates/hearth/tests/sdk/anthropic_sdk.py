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
print("anthropic sdk: ok")
