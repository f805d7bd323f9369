"""The throughput baseline: llama_cpp called in-process, one request at a time, no HTTP.

Started by ``run.py`` (one process per instance it compares with); reads one JSON request per line on stdin
(``{"messages": [...], "max_tokens": N}``) and writes one JSON line per answer on stdout:
``{"first": s, "end": s, "text": ..., "pieces": n, "finish_reason": ...}`` (``first`` and ``end`` in seconds
since the request line was read). Prints ``READY`` once the model is loaded. Each request is what unimodel's
llama.cpp engine does for a chat request: ``reset()`` (no prefix reuse, the worker's default), then the model's
chat template through ``create_chat_completion``, greedy (temperature 0), streamed internally, with
``repeat_penalty`` 1.0: the worker passes 1.0 when the request names no repetition penalty (Hugging Face
generate's default), rather than llama-cpp-python's chat-handler default of 1.1. ``run.py`` checks that every
target answers the same text.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

REPEAT_PENALTY = 1.0  # what the worker's chat path uses when the request names none (see above)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", required=True)
    parser.add_argument("--n-ctx", type=int, required=True)
    parser.add_argument("--n-threads", type=int, required=True)
    parser.add_argument("--n-threads-batch", type=int, required=True)
    args = parser.parse_args()

    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=args.path,
        n_ctx=args.n_ctx,
        n_threads=args.n_threads,
        n_threads_batch=args.n_threads_batch,
        verbose=False,
    )
    print("READY", flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        started = time.monotonic()
        first = None
        pieces: list[str] = []
        finish = None
        llm.reset()
        chunks = llm.create_chat_completion(
            messages=request["messages"],
            max_tokens=request["max_tokens"],
            temperature=0.0,
            repeat_penalty=REPEAT_PENALTY,
            stream=True,
        )
        for chunk in chunks:
            choice = chunk["choices"][0]  # type: ignore[index]
            content = choice["delta"].get("content")  # type: ignore[union-attr]
            if content:
                if first is None:
                    first = time.monotonic() - started
                pieces.append(content)
            finish = choice.get("finish_reason") or finish  # type: ignore[union-attr]
        answer = {
            "first": first,
            "end": time.monotonic() - started,
            "text": "".join(pieces),
            "pieces": len(pieces),
            "finish_reason": finish,
        }
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
