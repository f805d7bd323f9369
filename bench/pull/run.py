"""What pulling a model through unimodel costs over huggingface_hub alone and over a plain HTTP GET, and
whether concurrent pulls share one download; and (--mode ttfa) the time to first answer for a never-seen model.
Run by hand (bench/pull/README.md).

    .venv/bin/python bench/pull/run.py [--size-mb 256] [--rounds 3] [--throttle-mbps 0]
    .venv/bin/python bench/pull/run.py --mode ttfa [--rounds 5] [--throttle-mbps 0]

The fake Hub (tests/fakes/hf_hub.py, uvicorn on loopback, its own process) serves one random file of
--size-mb as an LFS file (302 to its CDN route, then a streamed body). Each download runs in a fresh process
(bench/pull/client.py) into an empty cache; rounds are interleaved across targets. Reported: MB/s (wall time
inside the client, start-up excluded), client CPU seconds per GB, fake-Hub CPU seconds per GB, bytes the
fake served per byte of the file. Then the sharing checks: 8 concurrent `HubModels.ensure` calls in one
process, and two `unimodel` processes started at once on one cache.

--mode ttfa: the fake serves the bundled SmolLM2 GGUF as HuggingFaceTB/SmolLM2-135M-Instruct-GGUF, and three
targets, interleaved round by round (the order rotating), each with an empty cache, get one chat answer
(max_tokens = 1) from it — see ttfa.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO, Children, child_env, cpu_seconds, free_port, interrupts_unwind  # noqa: E402

HERE = Path(__file__).resolve().parent
PYTHON = str(REPO / ".venv" / "bin" / "python")
TARGETS = ("httpx", "hf_hub_download", "unimodel")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=None, help="3 (pull), 5 (ttfa)")
    parser.add_argument("--throttle-mbps", type=float, default=0.0, help="MB/s the fake sends per body (0: no cap)")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "pull")
    parser.add_argument("--mode", choices=["pull", "ttfa"], default="pull")
    parser.add_argument(
        "--src", type=Path, help="ttfa: run unimodel serve and its workers from this source folder (PYTHONPATH)"
    )
    parser.add_argument(
        "--no-poll-cost", dest="poll_cost", action="store_false", help="ttfa: skip the cost of one progress read"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.mode == "ttfa":
        from ttfa import run_ttfa

        if args.targets == ",".join(TARGETS):
            args.targets = None
        args.rounds = args.rounds or 5
        run_ttfa(args)
        return
    args.rounds = args.rounds or 3
    blob = _blob(args.out, args.size_mb)
    size = blob.stat().st_size
    children = Children()
    with interrupts_unwind():
        try:
            port = free_port()
            argv = [PYTHON, str(HERE / "serve.py"), "--file", str(blob), "--port", str(port)]
            argv += ["--throttle-mbps", str(args.throttle_mbps)]
            server = children.start("fake-hub", argv, args.out / "fake-hub.log", child_env())
            endpoint = f"http://127.0.0.1:{port}"
            _wait_up(endpoint)
            rows = []
            for round_ in range(args.rounds):
                for target in args.targets.split(","):
                    rows.append({"round": round_, "target": target, **_one(target, endpoint, args.out, server.pid)})
                    print(json.dumps(rows[-1]), flush=True)
            sharing = _sharing(endpoint, args.out, size)
        finally:
            children.stop_all()
    report = {"size_bytes": size, "throttle_mbps": args.throttle_mbps, "rows": rows, "sharing": sharing}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"pull-{stamp}.json").write_text(json.dumps(report, indent=2))
    print(f"\n{args.size_mb} MB file, {args.rounds} rounds, medians:")
    print(f"{'target':<18}{'MB/s':>8}{'client CPU s/GB':>18}{'hub CPU s/GB':>15}{'served/size':>13}")
    for target in args.targets.split(","):
        mine = [r for r in rows if r["target"] == target]
        med = {k: statistics.median(r[k] for r in mine) for k in ("mb_s", "client_cpu_s", "server_cpu_s", "served")}
        gb = size / 1e9
        print(
            f"{target:<18}{med['mb_s']:>8.0f}{med['client_cpu_s'] / gb:>18.2f}"
            f"{med['server_cpu_s'] / gb:>15.2f}{med['served'] / size:>13.2f}"
        )
    for name, result in sharing.items():
        print(f"sharing, {name}: served/size = {result['served'] / size:.2f}, ok = {result['ok']}")


def _one(target: str, endpoint: str, out: Path, server_pid: int) -> dict[str, Any]:
    cache = out / f"cache-{target}"
    shutil.rmtree(cache, ignore_errors=True)
    _post(endpoint + "/_bench/reset")
    cpu0 = cpu_seconds(server_pid)
    done = subprocess.run(
        [PYTHON, str(HERE / "client.py"), target, endpoint, str(cache)], capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    served = sum(_get(endpoint + "/_bench/served")["bytes"].values())
    shutil.rmtree(cache, ignore_errors=True)
    return {
        "seconds": result["seconds"],
        "mb_s": result["bytes"] / result["seconds"] / 1e6,
        "client_cpu_s": result["cpu_s"],
        "server_cpu_s": cpu_seconds(server_pid) - cpu0,
        "served": served,
        "progress_samples": result["samples"],
    }


def _sharing(endpoint: str, out: Path, size: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    cache = out / "cache-sharing"
    shutil.rmtree(cache, ignore_errors=True)
    _post(endpoint + "/_bench/reset")
    one = subprocess.run(
        [PYTHON, str(HERE / "client.py"), "unimodel-shared", endpoint, str(cache), "--callers", "8"],
        capture_output=True,
        text=True,
    )
    results["8 callers, 1 process"] = {"ok": one.returncode == 0, "served": _served(endpoint)}
    shutil.rmtree(cache, ignore_errors=True)
    _post(endpoint + "/_bench/reset")
    argv = [PYTHON, str(HERE / "client.py"), "unimodel", endpoint, str(cache)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    codes = [p.wait(timeout=600) for p in procs]
    results["2 processes, 1 cache"] = {"ok": codes == [0, 0], "served": _served(endpoint)}
    shutil.rmtree(cache, ignore_errors=True)
    return results


def _blob(out: Path, size_mb: int) -> Path:
    path = out / f"blob-{size_mb}MB.bin"
    if not path.exists() or path.stat().st_size != size_mb * 1_000_000:
        with path.open("wb") as f:
            for _ in range(size_mb):
                f.write(os.urandom(1_000_000))
    return path


def _served(endpoint: str) -> int:
    return sum(_get(endpoint + "/_bench/served")["bytes"].values())


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def _post(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10).close()


def _wait_up(endpoint: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            _get(endpoint + "/_bench/served")
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


if __name__ == "__main__":
    main()
