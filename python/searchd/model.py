"""A model folder run in this process by searchd's engine (libsdpy through ctypes)."""

import ctypes
import os
from dataclasses import dataclass, field

import msgpack

_lib = None


def _load_lib():
    """libsdpy: $SEARCHD_LIB, else the build folder beside this package (a source tree built
    with meson), else the system's library path (installed)."""
    global _lib
    if _lib is not None:
        return _lib
    here = os.path.dirname(os.path.abspath(__file__))
    tried = []
    candidates = [os.environ.get("SEARCHD_LIB")]
    for build in ("build", "builddir"):
        candidates.append(os.path.join(here, "..", "..", build, "python", "libsdpy.so"))
    candidates.append("libsdpy.so")
    for path in filter(None, candidates):
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as e:
            tried.append(f"{path}: {e}")
    else:
        raise OSError("libsdpy.so not found (build it with meson, or set SEARCHD_LIB):\n  " +
                      "\n  ".join(tried))
    P, I, C = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    lib.sdpy_model_load.argtypes = [C, ctypes.POINTER(P), C, ctypes.c_size_t]
    lib.sdpy_model_free.argtypes = [P]
    lib.sdpy_model_free.restype = None
    for name in ("layers", "num_labels", "max_tokens"):
        getattr(lib, "sdpy_model_" + name).argtypes = [P]
    lib.sdpy_model_label.argtypes = [P, I]
    lib.sdpy_model_label.restype = C
    lib.sdpy_model_family.argtypes = [P]
    lib.sdpy_model_family.restype = C
    lib.sdpy_classify.argtypes = [P, C, I, ctypes.POINTER(C), ctypes.POINTER(C),
                                  ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_double),
                                  ctypes.POINTER(ctypes.c_int32), C, ctypes.c_size_t]
    lib.sdpy_classify_record.argtypes = [P, ctypes.c_char_p, ctypes.c_size_t, I,
                                         ctypes.POINTER(C), ctypes.POINTER(C),
                                         ctypes.POINTER(ctypes.c_int32),
                                         ctypes.POINTER(ctypes.c_double),
                                         ctypes.POINTER(ctypes.c_int32), C, ctypes.c_size_t]
    lib.sdpy_strerror.argtypes = [I]
    lib.sdpy_strerror.restype = C
    _lib = lib
    return lib


@dataclass
class Prediction:
    """One text's answer: the label's name and id, every label's probability by name, the
    number of tokens, and the schedule it ran under ("" for none)."""
    text: str
    label: str
    label_id: int
    probabilities: dict = field(default_factory=dict)
    tokens: int = 0
    schedule: str = ""


class Model:
    """``Model(dir)`` loads a Hugging Face ``*ForSequenceClassification`` folder (as searchctl
    does). ``classify`` may be called from any number of threads at once: each call runs on a
    run state of its own from the model's pool, and the engine releases the GIL while it
    works (ctypes does)."""

    def __init__(self, path):
        self._lib = _load_lib()
        self.path = os.path.abspath(path)
        handle = ctypes.c_void_p()
        err = ctypes.create_string_buffer(600)
        rc = self._lib.sdpy_model_load(self.path.encode(), ctypes.byref(handle), err, len(err))
        if rc != 0:
            raise ValueError(f"{err.value.decode(errors='replace')} ({rc})")
        self._h = handle
        self.layers = self._lib.sdpy_model_layers(handle)
        self.family = self._lib.sdpy_model_family(handle).decode()
        self.max_tokens = self._lib.sdpy_model_max_tokens(handle)
        self.labels = [self._lib.sdpy_model_label(handle, i).decode()
                       for i in range(self._lib.sdpy_model_num_labels(handle))]

    def classify(self, texts, schedule=None, pairs=None):
        """Classifies a text or a list of texts (with ``pairs``, the second segments) under
        ``schedule``: its text (``"attn:1,0.7,0.5,0.3"``), a record from ``Client.get`` (its
        schedule, precision and, when it narrows layers, the heads and neurons its ``width``
        keeps: only a record can say those), or None for no pruning. Returns one Prediction per text (a single
        Prediction for a single text)."""
        single = isinstance(texts, str)
        if single:
            texts = [texts]
            pairs = [pairs] if pairs is not None else None
        texts = list(texts)
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(pairs)} pairs")
        record = None
        if isinstance(schedule, dict):
            record = msgpack.packb(schedule, use_bin_type=True)
            schedule = schedule["schedule"]
        n, c = len(texts), len(self.labels)
        if n == 0:
            return []
        arr_t = (ctypes.c_char_p * n)(*[t.encode() for t in texts])
        arr_p = (ctypes.c_char_p * n)(*[p.encode() if p is not None else None for p in pairs]) \
            if pairs is not None else None
        label = (ctypes.c_int32 * n)()
        prob = (ctypes.c_double * (n * c))()
        tokens = (ctypes.c_int32 * n)()
        err = ctypes.create_string_buffer(700)
        if self._h is None:
            raise ValueError("the model was closed")
        if record is not None:
            rc = self._lib.sdpy_classify_record(self._h, record, len(record), n, arr_t, arr_p,
                                                label, prob, tokens, err, len(err))
        else:
            rc = self._lib.sdpy_classify(self._h, (schedule or "").encode(), n, arr_t, arr_p,
                                         label, prob, tokens, err, len(err))
        if rc != 0:
            raise ValueError(f"{err.value.decode(errors='replace')} ({rc})")
        out = [Prediction(texts[i], self.labels[label[i]], label[i],
                          {self.labels[k]: prob[i * c + k] for k in range(c)}, tokens[i],
                          schedule or "") for i in range(n)]
        return out[0] if single else out

    def close(self):
        """Frees the engine's memory now (no classify may be running)."""
        if self._h is not None:
            self._lib.sdpy_model_free(self._h)
            self._h = None

    def __del__(self):
        if getattr(self, "_h", None) is not None:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
