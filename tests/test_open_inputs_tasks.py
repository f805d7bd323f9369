"""The gateway's idea of which open-model tasks take an image or audio input (what it fetches and inlines,
runtime/service.py) and the worker's task tables (what instances serve) name the same tasks."""

from __future__ import annotations

import pytest

from unimodel.runtime.service import AUDIO_IN_TASKS, IMAGE_IN_TASKS, VISION_CHAT_TASKS

pytest.importorskip("PIL", reason="the open-model engines are not installed (make test installs them)")


def test_the_gateways_media_input_tasks_are_the_workers() -> None:
    from unimodel.runtime.worker.engines.audio_tasks import AUDIO_TASKS
    from unimodel.runtime.worker.engines.base import VISION_CHAT_TASKS as WORKER_VISION_CHAT
    from unimodel.runtime.worker.engines.vision_tasks import VISION_TASKS

    assert set(VISION_TASKS) == IMAGE_IN_TASKS
    assert set(AUDIO_TASKS) == AUDIO_IN_TASKS
    assert WORKER_VISION_CHAT == VISION_CHAT_TASKS
