"""`python -m unimodel.runtime.worker`: serve one model on 127.0.0.1:<port> until stopped.

Exit status: 0 after a clean stop (SIGTERM, SIGINT), 2 for a bad command line, 3 when the model cannot
load (the reason is the last line on stderr), 1 when the port cannot be bound. Started with a lifeline
(`UNIMODEL_LIFELINE_FD`, runtime/lifeline.py), it kills its process group and itself (SIGKILL) as soon as the
process that started it is gone, whatever it was doing: nobody is left to answer.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence

# Nothing the worker runs may reach for the network: models come from local files (or the local cache).
for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_name] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

EXIT_LOAD_FAILED = 3
EXIT_CANNOT_LISTEN = 1


def _engine_arg(text: str) -> tuple[str, str | int | float | bool]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    value: str | int | float | bool = raw
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        for convert in (int, float):
            try:
                value = convert(raw)
                break
            except ValueError:
                continue
    return key.strip(), value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from .engines import ENGINES

    parser = argparse.ArgumentParser(prog="python -m unimodel.runtime.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--engine", required=True, choices=list(ENGINES))
    parser.add_argument("--task", required=True, help="chat, text-generation, feature-extraction, fill-mask, …")
    parser.add_argument("--model-id", required=True, help="the id clients call (a Hugging Face id without --path)")
    parser.add_argument("--path", help="a local model file or folder")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--engine-arg", action="append", default=[], type=_engine_arg, metavar="KEY=VALUE")
    parser.add_argument("--command", help="command engine: the server to launch, with {port}, {model}, {path}")
    parser.add_argument("--health-path", default="/health", help="command engine: the path that answers 200 when ready")
    parser.add_argument("--start-timeout", type=float, default=600.0, help="command engine: seconds to wait for ready")
    return parser.parse_args(argv)


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket's address, bound now (not listening yet: connections are refused until the server
    serves), so a port in use fails the worker at once instead of after the model load."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from .engines import ModelSpec, engine_class

    engine_cls = engine_class(args.engine)
    if args.task not in engine_cls.tasks:
        tasks = ", ".join(sorted(engine_cls.tasks))
        print(
            f"unimodel worker: engine {args.engine} does not run task {args.task!r} (it runs: {tasks})", file=sys.stderr
        )
        return 2
    if args.engine == "command" and not args.command:
        print("unimodel worker: --engine command needs --command TEMPLATE", file=sys.stderr)
        return 2
    spec = ModelSpec(
        engine=args.engine,
        task=args.task,
        model_id=args.model_id,
        path=args.path,
        engine_args=dict(args.engine_arg),
        command=args.command,
        health_path=args.health_path,
        start_timeout_s=args.start_timeout,
    )
    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        print(f"unimodel worker: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr, flush=True)
        return EXIT_CANNOT_LISTEN

    from ..lifeline import end_process_group, watch_parent
    from .state import ModelState, ready_fd_from_env

    stop = threading.Event()  # a signal, or the model failed

    def failed(message: str) -> None:
        print(f"unimodel worker: {message}", file=sys.stderr, flush=True)
        stop.set()

    model = ModelState(engine_cls(spec), on_failed=failed, ready_fd=ready_fd_from_env())

    def orphaned() -> None:
        model.engine.abandon()
        end_process_group("the gateway that started this worker is gone")

    watch_parent(orphaned)  # before the load: a gateway killed during a long load takes the worker with it
    where = f" from {spec.path}" if spec.path else ""
    print(
        f"unimodel worker: loading {spec.model_id}{where} ({spec.engine}, {spec.task}); "
        f"serving on http://{args.host}:{args.port}",
        file=sys.stderr,
        flush=True,
    )
    # Cold start: the model loads (in a thread) while the HTTP server is imported and started; what the load
    # needs is imported first, in this thread (two threads importing only take turns with the GIL).
    model.engine.prepare()
    model.start_loading()

    from .app import Worker, create_app
    from .server import Server

    server = Server(sock, create_app(Worker(model)))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    if not stop.is_set():
        server.activate()
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="http", daemon=True).start()
        model.serving()
        stop.wait()
        server.shutdown()  # no new connections; the requests being answered finish
        if model.status != "failed":
            server.wait_idle()
    model.engine.close()
    server.server_close()
    return EXIT_LOAD_FAILED if model.status == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())
