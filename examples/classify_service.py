#!/usr/bin/env python3
"""An inference service that applies searchd's schedules.

It asks searchd for the fastest schedule with under 1% accuracy drop (the drop's 95% upper
bound on held-out data), classifies each line of stdin with it in this process, and switches to
the new schedule when searchd announces ``schedule.updated`` (a tune finished, the hardware
changed). Each answer is a JSON line on stdout: text, label, probabilities, schedule; a switch
is a line ``{"event": "schedule", ...}``.

    python3 examples/classify_service.py --socket /tmp/sd.sock --model demo < texts.txt

PYTHONPATH must reach python/ (the package) and the library must be built (meson), or
installed; SEARCHD_LIB may name libsdpy.so.
"""

import argparse
import json
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from searchd import Client, Model, SearchdError  # noqa: E402


class Service:
    def __init__(self, client, model_name, max_drop, path=None):
        self.client = client
        self.name = model_name
        self.max_drop = max_drop
        if path is None:  # the folder searchd registered
            path = next((m["path"] for m in client.models()
                         if model_name in (m["model"], m.get("name"))), None)
            if path is None:
                raise SystemExit(f"classify_service: searchd has no model '{model_name}'")
        self.model = Model(path)
        self.lock = threading.Lock()
        self.out_lock = threading.Lock()
        self.record = None
        # Subscribe before the first fetch, so an update between the two is not missed.
        client.subscribe(model_name, callback=self.on_update)
        self.switch("start")

    def switch(self, reason):
        """Fetches the schedule for the budget and makes it the one classify uses."""
        try:
            record = self.client.get(self.name, max_drop=self.max_drop)
        except SearchdError as e:
            self.emit({"event": "error", "reason": reason, "code": e.code, "message": e.message})
            return
        with self.lock:
            self.record = record
        self.emit({"event": "schedule", "reason": reason, "schedule": record["schedule"],
                   "flops_ratio": record["flops_ratio"], "drop_upper": record["drop_upper"],
                   "latency_ms": record["latency_ms"]})

    def on_update(self, method, params):
        if method == "schedule.updated":
            self.switch(params.get("reason", "updated"))

    def classify(self, texts):
        with self.lock:
            record = self.record
        if record is None:
            raise RuntimeError("no schedule yet")
        for p in self.model.classify(texts, schedule=record):
            self.emit({"text": p.text, "label": p.label, "probabilities": p.probabilities,
                       "schedule": p.schedule})

    def emit(self, obj):
        with self.out_lock:
            print(json.dumps(obj), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--socket", help="searchd's Unix socket (default: searchd's default)")
    ap.add_argument("--connect", help="HOST:PORT instead of a Unix socket")
    ap.add_argument("--model", required=True, help="the model's name or id in searchd")
    ap.add_argument("--path", help="the model folder (default: the path searchd registered)")
    ap.add_argument("--max-drop", default="1%", help="accuracy drop budget: 1%% or 0.01")
    args = ap.parse_args()
    with Client(args.socket, connect=args.connect) as client:
        service = Service(client, args.model, args.max_drop, args.path)
        for line in sys.stdin:
            line = line.rstrip("\r\n")
            if line:
                service.classify([line])


if __name__ == "__main__":
    main()
