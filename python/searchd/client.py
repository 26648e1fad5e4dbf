"""The searchd client: msgpack-RPC over a Unix socket or TCP (docs/protocol.md).

One background thread reads the connection: replies go to the call that waits for them (calls
may come from any thread and are answered out of order), notifications to the subscribers'
callbacks and to a queue that ``notifications()`` iterates. Errors are ``SearchdError`` with the
daemon's code and message."""

import os
import queue
import socket
import threading

import msgpack

from .budget import parse_share

SP_ETIMEOUT = -5008
SP_ECLOSED = -5009


class SearchdError(Exception):
    """An error reply (``code`` is searchd's negative code) or a lost connection."""

    def __init__(self, code, message):
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message


def default_socket():
    """Where searchd listens by default: $XDG_RUNTIME_DIR/searchd.sock, else
    /tmp/searchd-$UID.sock (as sdc_default_socket)."""
    run = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(run, "searchd.sock") if run else f"/tmp/searchd-{os.getuid()}.sock"


class Client:
    """A connection to searchd. ``Client()`` uses the default socket, ``Client(path)`` a Unix
    socket, ``Client(connect="127.0.0.1:7070")`` TCP. ``timeout`` (seconds) bounds each call."""

    def __init__(self, socket_path=None, *, connect=None, timeout=30.0):
        self.timeout = timeout
        if connect:
            host, _, port = connect.rpartition(":")
            self._sock = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            path = socket_path or default_socket()
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self._sock.connect(path)
            except OSError as e:
                self._sock.close()
                raise SearchdError(-e.errno, f"{path}: {e.strerror} (is searchd running?)") \
                    from None
        self._sock.settimeout(None)
        self._lock = threading.Lock()  # msgid, pending, callbacks, closed
        self._send_lock = threading.Lock()
        self._msgid = 0
        self._pending = {}  # msgid -> [event, error, result]
        self._callbacks = {}  # model -> [callable]
        self._notes = queue.Queue()
        self._closed = None
        self._cb_queue = None  # callbacks' queue and thread, started by the first callback
        self._reader = threading.Thread(target=self._read_loop, name="searchd-client",
                                        daemon=True)
        self._reader.start()

    # ---- the protocol, one method each ----

    def ping(self):
        return self.call("ping")

    def info(self):
        return self.call("info")

    def model_add(self, path, data, *, holdout=None, name=None, replace=None, timeout=300):
        """Registers a model folder with its labelled data (paths made absolute here: searchd's
        working directory is not yours)."""
        return self.call("model.add", path=os.path.abspath(path), data=os.path.abspath(data),
                         holdout=os.path.abspath(holdout) if holdout else None, name=name,
                         replace=replace, timeout=timeout)

    def models(self):
        return self.call("model.list")

    def model_remove(self, model):
        return self.call("model.remove", model=model)

    def tune(self, model, *, max_drop=None, max_flops=None, max_latency_ms=None, width=False,
             int8=False):
        """Starts a search; returns ``{job, status}``. ``width``: also heads and FFN neurons;
        ``int8``: also each layer's precision. Progress comes as ``job.progress`` and
        ``job.done`` notifications (``notifications()``); ``wait_job`` waits for the end."""
        extra = {k: True for k, v in (("width", width), ("int8", int8)) if v}
        return self.call("tune", model=model, **_budget(max_drop, max_flops, max_latency_ms),
                         **extra)

    def wait_job(self, job, timeout=None):
        """Waits for ``job.done`` of ``job`` (a job this connection started) and returns it."""
        for note in self.notifications(timeout=timeout):
            if note[0] == "job.done" and note[1].get("job") == job:
                return note[1]
        raise SearchdError(SP_ETIMEOUT, f"job {job} did not finish in time")

    def job_status(self, job):
        return self.call("job.status", job=job)

    def job_cancel(self, job):
        return self.call("job.cancel", job=job)

    def get(self, model, *, max_drop=None, max_flops=None, max_latency_ms=None, minimize=None):
        """The record of the cheapest schedule under ``max_drop`` ("1%" or 0.01; the drop's 95%
        upper bound on held-out data), or the most accurate under ``max_flops`` /
        ``max_latency_ms``. No match raises SearchdError -2000 naming the closest record."""
        return self.call("schedule.get", model=model, minimize=minimize,
                         **_budget(max_drop, max_flops, max_latency_ms))

    def frontier(self, model):
        return self.call("schedule.frontier", model=model)

    def subscribe(self, model, callback=None):
        """Asks for ``schedule.updated`` of ``model``. With ``callback``, it is called as
        ``callback(method, params)`` on the client's callback thread (it may call the daemon,
        e.g. ``get`` the new schedule); without, the
        notifications come through ``notifications()``."""
        result = self.call("subscribe", model=model)
        if callback is not None:
            with self._lock:  # updates name the model by id; the caller may have used its name
                for key in {model, result.get("model", model)}:
                    self._callbacks.setdefault(key, []).append(callback)
        return result

    def unsubscribe(self, model):
        result = self.call("unsubscribe", model=model)
        with self._lock:
            for key in {model, result.get("model", model)}:
                self._callbacks.pop(key, None)
        return result

    def profile(self, model):
        return self.call("profile", model=model)

    def retune(self, model=None, *, force=None, timeout=300):
        return self.call("retune", model=model, force=force, timeout=timeout)

    # ---- the machinery ----

    def call(self, method, timeout=None, **params):
        """Calls any method with named params (None values are left out); returns the result or
        raises SearchdError."""
        args = {k: v for k, v in params.items() if v is not None}
        with self._lock:
            if self._closed:
                raise self._closed
            self._msgid = self._msgid % 0xFFFFFFFF + 1
            msgid = self._msgid
            slot = [threading.Event(), None, None]
            self._pending[msgid] = slot
        data = msgpack.packb([0, msgid, method, [args] if args else []], use_bin_type=True)
        try:
            with self._send_lock:
                self._sock.sendall(data)
        except OSError as e:
            with self._lock:
                self._pending.pop(msgid, None)
            raise SearchdError(SP_ECLOSED, f"{method}: connection lost: {e}") from None
        wait = self.timeout if timeout is None else timeout
        if not slot[0].wait(wait):
            with self._lock:
                self._pending.pop(msgid, None)
            raise SearchdError(SP_ETIMEOUT, f"{method}: no reply in {wait} s")
        if slot[1] is not None:
            raise slot[1]
        return slot[2]

    def notifications(self, timeout=None):
        """Yields notifications as ``(method, params)``: ``schedule.updated``, ``job.progress``,
        ``job.done``. Ends after ``timeout`` seconds without one (None: never) or when the
        connection closes."""
        while True:
            try:
                note = self._notes.get(timeout=timeout)
            except queue.Empty:
                return
            if note is None:
                self._notes.put(None)  # later iterators end too
                return
            yield note

    def close(self):
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._reader.join(5)
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read_loop(self):
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        reason = SearchdError(SP_ECLOSED, "searchd closed the connection")
        try:
            while True:
                chunk = self._sock.recv(65536)
                if not chunk:
                    break
                unpacker.feed(chunk)
                for msg in unpacker:
                    self._dispatch(msg)
        except OSError as e:
            reason = SearchdError(SP_ECLOSED, f"connection lost: {e}")
        except (msgpack.UnpackException, ValueError) as e:
            reason = SearchdError(SP_ECLOSED, f"undecodable reply from searchd: {e}")
        with self._lock:
            self._closed = reason
            pending, self._pending = self._pending, {}
        for slot in pending.values():
            slot[1] = reason
            slot[0].set()
        self._notes.put(None)
        with self._lock:
            if self._cb_queue is not None:
                self._cb_queue.put(None)

    def _dispatch(self, msg):
        if not isinstance(msg, list) or not msg:
            return
        if msg[0] == 1 and len(msg) == 4:
            with self._lock:
                slot = self._pending.pop(msg[1], None)
            if slot is None:
                return  # a call that timed out
            err = msg[2]
            if err is not None:
                code, text = (err[0], err[1]) if isinstance(err, list) and len(err) == 2 \
                    else (-5000, str(err))
                slot[1] = SearchdError(code, text)
            slot[2] = msg[3]
            slot[0].set()
        elif msg[0] == 2 and len(msg) == 3:
            method, params = msg[1], msg[2]
            if isinstance(params, list):
                params = params[0] if params else {}
            with self._lock:
                cbs = list(self._callbacks.get(params.get("model"), ())) \
                    if method == "schedule.updated" else []
            if cbs:
                self._run_callbacks(cbs, method, params)
            else:
                self._notes.put((method, params))

    def _run_callbacks(self, cbs, method, params):
        # On a thread of their own, so a callback may call the daemon (get the new schedule)
        # while this thread goes on reading its reply.
        with self._lock:
            if self._cb_queue is None:
                self._cb_queue = queue.Queue()
                threading.Thread(target=self._callback_loop, name="searchd-callbacks",
                                 daemon=True).start()
            self._cb_queue.put((cbs, method, params))

    def _callback_loop(self):
        while True:
            item = self._cb_queue.get()
            if item is None:
                return
            cbs, method, params = item
            for cb in cbs:
                try:
                    cb(method, params)
                except Exception:  # a callback's failure must not stop the others
                    import traceback
                    traceback.print_exc()


def _budget(max_drop, max_flops, max_latency_ms):
    out = {}
    if max_drop is not None:
        out["max_drop"] = parse_share(max_drop, "max_drop")
    if max_flops is not None:
        out["max_flops"] = parse_share(max_flops, "max_flops", bare_limit=None)
    if max_latency_ms is not None:
        out["max_latency_ms"] = float(max_latency_ms)
    return out
