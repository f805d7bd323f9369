"""The cold-start baseline: one fresh process imports llama_cpp, loads the GGUF and streams one chat answer.

Started by ``run.py`` (it times from the moment it spawns this process); usable by hand::

    .venv/bin/python bench/cold_start/direct.py --path MODEL.gguf --n-ctx 4096 --n-threads 1 --n-threads-batch 1 \
        --max-tokens 8 --prompt 'Say hello.'

It prints ``STAGE <name> <CLOCK_MONOTONIC seconds>`` lines as it goes (``interpreter`` is the first line of
this script, before any import but ``time``) and ends with ``RESULT <json>`` (the answer's text and pieces).
The request is the worker's (llama.cpp engine): the model's own chat template, greedy (temperature 0),
``max_tokens``, streamed, ``repeat_penalty`` 1.0 (``create_chat_completion``'s default and the worker's when a
request names none), ``n_threads_batch`` as given (``run.py`` checks the answers match).
Nothing here touches the network.
"""

import time

T0 = time.monotonic()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402


def stage(name: str, at: float | None = None) -> None:
    print(f"STAGE {name} {time.monotonic() if at is None else at:.6f}", flush=True)


def main() -> int:
    stage("interpreter", T0)
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", required=True)
    parser.add_argument("--n-ctx", type=int, required=True)
    parser.add_argument("--n-threads", type=int, required=True)
    parser.add_argument("--n-threads-batch", type=int, required=True)
    parser.add_argument("--max-tokens", type=int, required=True)
    parser.add_argument("--prompt", required=True)
    args = parser.parse_args()

    import llama_cpp

    stage("import_llama_cpp")
    llm = llama_cpp.Llama(
        model_path=args.path,
        n_ctx=args.n_ctx,
        n_threads=args.n_threads,
        n_threads_batch=args.n_threads_batch,
        verbose=False,
    )
    stage("loaded")
    chunks = llm.create_chat_completion(
        messages=[{"role": "user", "content": args.prompt}],
        max_tokens=args.max_tokens,
        temperature=0.0,
        stream=True,
    )
    pieces: list[str] = []
    for chunk in chunks:
        content = chunk["choices"][0]["delta"].get("content")  # type: ignore[index,union-attr]
        if content:
            if not pieces:
                stage("first_token")
            pieces.append(content)
    stage("done")
    print("RESULT " + json.dumps({"text": "".join(pieces), "pieces": len(pieces)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
