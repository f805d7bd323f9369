"""The time-to-first-answer baseline: huggingface_hub alone, then llama.cpp's own load and one answer, in a fresh
process, for bench/pull/run.py --mode ttfa.

    python bench/pull/ttfa_direct.py ENDPOINT CACHE_DIR REPO FILE --n-ctx 4096 --n-threads 1

Imports (huggingface_hub's hf_hub_download, llama_cpp) come first and are not timed; the clock starts just before
`hf_hub_download`. Then `llama_cpp.Llama(model_path, n_ctx, n_threads, n_threads_batch)` — the worker's
defaults, passed in by run.py — and one `create_chat_completion(max_tokens=1)` as the worker makes it (greedy,
repeat_penalty 1.0). Prints one JSON line of CLOCK_MONOTONIC stamps: `import_start` and `imported` (llama_cpp's
import, reported apart), `start`, `downloaded`, `loaded`, `answered`; and the answer's text.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("endpoint")
    parser.add_argument("cache")
    parser.add_argument("repo")
    parser.add_argument("file")
    parser.add_argument("--n-ctx", type=int, required=True)
    parser.add_argument("--n-threads", type=int, required=True)
    args = parser.parse_args()
    from huggingface_hub import hf_hub_download  # (its submodules load lazily: on this line, not in the timing)

    stamps = {"import_start": time.monotonic()}
    import llama_cpp

    stamps["imported"] = time.monotonic()
    stamps["start"] = time.monotonic()
    path = hf_hub_download(args.repo, args.file, endpoint=args.endpoint, cache_dir=args.cache, token=False)
    stamps["downloaded"] = time.monotonic()
    llm = llama_cpp.Llama(
        model_path=path, n_ctx=args.n_ctx, n_threads=args.n_threads, n_threads_batch=args.n_threads, verbose=False
    )
    stamps["loaded"] = time.monotonic()
    answer = llm.create_chat_completion(
        messages=[{"role": "user", "content": "Say hi"}], max_tokens=1, temperature=0.0, repeat_penalty=1.0
    )
    stamps["answered"] = time.monotonic()
    text = answer["choices"][0]["message"]["content"]  # type: ignore[index]
    print(json.dumps({**stamps, "text": text}), flush=True)


if __name__ == "__main__":
    main()
