"""The real `openai` and `anthropic` SDKs against a gateway whose upstream reads a long prompt
for about 20 s (reporting progress) before the first token: both streams stay open with read
timeouts far shorter than that, and both get the answer.

Env: HEARTH_BASE (gateway origin), HEARTH_CHAT_MODEL, HEARTH_MESSAGES_MODEL, HEARTH_READ_TIMEOUT
(seconds), HEARTH_MIN_WAIT (seconds the upstream takes, at least).
"""
import os
import threading
import time

import anthropic
import openai

base = os.environ["HEARTH_BASE"]
read_timeout = float(os.environ["HEARTH_READ_TIMEOUT"])
min_wait = float(os.environ["HEARTH_MIN_WAIT"])
# Every timeout of the client, the read timeout among them.
timeout = read_timeout
results = {}


def chat():
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0, timeout=timeout)
    stream = client.chat.completions.create(
        model=os.environ["HEARTH_CHAT_MODEL"], messages=[{"role": "user", "content": "hi"}], stream=True,
    )
    results["chat"] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def messages():
    client = anthropic.Anthropic(base_url=base, api_key="none", max_retries=0, timeout=timeout)
    with client.messages.stream(
        model=os.environ["HEARTH_MESSAGES_MODEL"], max_tokens=64, messages=[{"role": "user", "content": "hi"}],
    ) as stream:
        results["messages"] = "".join(stream.text_stream)


def run(name, fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 — reported below, with its type
        results[name] = f"failed: {type(e).__name__}: {e}"


started = time.monotonic()
threads = [threading.Thread(target=run, args=(n, f)) for n, f in (("chat", chat), ("messages", messages))]
for t in threads:
    t.start()
for t in threads:
    t.join()
waited = time.monotonic() - started
assert results == {"chat": "Hello", "messages": "Hello"}, results
assert waited >= min_wait, f"the answer came after {waited:.1f} s, before the upstream was done"
assert read_timeout < min_wait
print(f"ok after {waited:.1f} s with a {read_timeout} s read timeout")
