"""``POST /v1/clips`` and ``GET /v1/jobs/{id}`` against a real Redis and a stand-in worker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from gateway_support import CLIP_MODEL, StandInWorker, TestClient

from service.queue import ClipTask
from service.settings import Settings


def _post(client: TestClient, data: bytes, **form: Any) -> Any:
    fields = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in form.items()}
    return client.post("/v1/clips", files={"file": ("clip.mp4", data, "video/mp4")}, data=fields)


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


def test_upload_is_answered_by_a_worker(
    client: TestClient, make_worker: Callable[..., StandInWorker], mp4: bytes
) -> None:
    make_worker()
    response = _post(client, mp4, top_k=2, clips=2, crops=3)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == CLIP_MODEL  # the catalog's clip default
    assert body["labels"][0] == {"label": "waving", "score": 0.9}
    assert body["job_id"]
    params = body["params"]
    assert (params["top_k"], params["clips"], params["crops"]) == (2, 2, 3)
    assert params["probe"]["codec"] == "h264" and params["probe"]["num_frames"] == 12


def test_wait_false_answers_202_then_the_job(
    client: TestClient, make_worker: Callable[..., StandInWorker], mp4: bytes
) -> None:
    make_worker()
    response = _post(client, mp4, wait=False, model=CLIP_MODEL)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "queued"
    assert accepted["status_url"] == f"/v1/jobs/{accepted['job_id']}"
    deadline = time.monotonic() + 10
    while True:
        job = client.get(accepted["status_url"])
        assert job.status_code == 200
        if job.json()["status"] == "done" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    body = job.json()
    assert body["status"] == "done", body
    assert body["worker"] == "w1"
    assert body["result"]["labels"][0]["label"] == "waving"


def test_unknown_job_is_404(client: TestClient) -> None:
    _error(client.get("/v1/jobs/nope"), 404, "job_not_found")


def test_failed_job_answers_its_error_status(
    client: TestClient, make_worker: Callable[..., StandInWorker], mp4: bytes
) -> None:
    class CorruptError(Exception):
        error: ClassVar[dict[str, str]] = {
            "code": "corrupt",
            "message": "the decoder rejected frame 3",
        }

    def answer(task: ClipTask) -> dict[str, Any]:
        raise CorruptError()

    make_worker(answer=answer)
    error = _error(_post(client, mp4), 422, "corrupt")
    assert "frame 3" in error["message"]
    assert error["job_id"]


def test_too_large_is_413(client: TestClient, settings: Settings, mp4: bytes) -> None:
    big = mp4 + b"\0" * (settings.max_upload_bytes + 1 - len(mp4))
    error = _error(_post(client, big), 413, "too_large")
    assert str(settings.max_upload_bytes) in error["message"]
    assert error["max_bytes"] == settings.max_upload_bytes
    # a body far over the limit is refused from its Content-Length, before it is read
    huge = b"\0" * (settings.max_upload_bytes * 2)
    error = _error(_post(client, huge), 413, "too_large")
    assert str(settings.max_upload_bytes) in error["message"]
    assert error["max_bytes"] == settings.max_upload_bytes


def test_too_large_chunked_upload_is_cut_off(client: TestClient, settings: Settings) -> None:
    """A body without Content-Length is counted as it streams and refused at the limit."""
    boundary = "vidrecboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(64):  # 1 MiB, 4x the limit, in 16 KiB chunks
            yield b"\0" * 16384
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/v1/clips",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    error = _error(response, 413, "too_large")
    # the same limit and fields as the other 413s (not the limit plus the multipart allowance)
    assert f"at most {settings.max_upload_bytes} bytes" in error["message"]
    assert error["max_bytes"] == settings.max_upload_bytes


def test_not_a_video_is_refused(
    client: TestClient, make_worker: Callable[..., StandInWorker]
) -> None:
    make_worker()
    error = _error(
        _post(client, b"hello, this is plain text and not a video at all"), 415, "not_a_video"
    )
    assert error["message"]
    # the first bytes of a real container, cut short: truncated (422)
    response = _post(client, b"\x1a\x45\xdf\xa3" + b"\0" * 20)
    assert response.status_code in (415, 422), response.text
    assert response.json()["error"]["code"]


def test_unknown_model_is_404_with_the_known_ones(
    client: TestClient, make_worker: Callable[..., StandInWorker], mp4: bytes
) -> None:
    make_worker()
    error = _error(_post(client, mp4, model="no_such_model"), 404, "unknown_model")
    assert error["models"] == [CLIP_MODEL]
    assert CLIP_MODEL in error["message"]


def test_no_worker_is_503(client: TestClient, mp4: bytes) -> None:
    response = _post(client, mp4)
    _error(response, 503, "no_worker")
    assert response.headers["retry-after"]


def test_queue_full_is_429_with_retry_after(
    redis_url: str, key_prefix: str, make_worker: Callable[..., StandInWorker], mp4: bytes
) -> None:
    settings = Settings(
        redis_url=redis_url, key_prefix=key_prefix, queue_max_jobs=2, retry_after_s=7
    )
    from service.gateway import create_app

    make_worker(settings=settings, consume=False)
    with TestClient(create_app(settings)) as client:
        for _ in range(2):
            assert _post(client, mp4, wait=False).status_code == 202
        response = _post(client, mp4, wait=False)
        error = _error(response, 429, "queue_full")
        assert response.headers["retry-after"] == "7"
        assert error["retry_after_s"] == 7


def test_bad_parameters_are_422_with_the_error_shape(
    client: TestClient, make_worker: Callable[..., StandInWorker], mp4: bytes
) -> None:
    make_worker()
    for form in ({"top_k": 0}, {"crops": 2}, {"clips": "many"}, {"wait": "perhaps"}):
        error = _error(_post(client, mp4, **form), 422, "invalid_request")
        field = next(iter(form))
        assert field in error["message"], error
        assert error["details"][0]["loc"][-1] == field
    # no file at all
    error = _error(client.post("/v1/clips", data={"model": CLIP_MODEL}), 422, "invalid_request")
    assert "file" in error["message"]


def test_unknown_route_and_method_have_the_error_shape(client: TestClient) -> None:
    _error(client.get("/v1/nothing"), 404, "not_found")
    error = _error(client.delete("/v1/clips"), 405, "method_not_allowed")
    # says what is accepted, not only Starlette's bare "Method Not Allowed"
    assert error["message"] == "DELETE is not allowed on /v1/clips; use POST"
