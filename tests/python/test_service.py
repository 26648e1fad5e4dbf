"""The Python package against a real searchd: the client's methods, the example service's
answers against searchctl's for the same texts and schedule (before and after a
schedule.updated), and Model from several threads. Run by meson (``meson test python``); prints
``python: N passed, F failed`` for test.sh's count."""

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

SEARCHD = os.environ["SD_TEST_SEARCHD"]
SEARCHCTL = os.environ["SD_TEST_SEARCHCTL"]
SOURCE = os.environ["SEARCHD_SOURCE_ROOT"]
SHARED = os.environ["SEARCHD_SHARED"]
DEMO = os.environ["SEARCHD_DEMO_MODEL"]
sys.path.insert(0, os.path.join(SOURCE, "python"))

from searchd import Client, Model, SearchdError, parse_share  # noqa: E402

TEXTS = ["a gorgeous, witty, seductive movie", "the plot is a mess",
         "it's a charming and often affecting journey", "unflinchingly bleak and desperate",
         "the acting, costumes, music, cinematography and sound are all astounding"]


def searchctl(*args):
    out = subprocess.run([SEARCHCTL, *args], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise AssertionError(f"searchctl {' '.join(args)}: {out.returncode} {out.stderr}")
    return out.stdout


class Daemon:
    """searchd on a temp socket and state dir, the demo model added with 600 sentences."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sdpy-")
        self.sock = os.path.join(self.dir, "s.sock")
        self.data = os.path.join(self.dir, "small.tsv")
        with open(os.path.join(SHARED, "data", "sst2", "search.tsv")) as f, \
                open(self.data, "w") as out:
            out.writelines(line for _, line in zip(range(601), f))
        self.log = open(os.path.join(self.dir, "searchd.log"), "w")
        self.proc = subprocess.Popen(
            [SEARCHD, "--socket", self.sock, "--state-dir", os.path.join(self.dir, "state"),
             "--calib-seconds", "0.2", "--search-generations", "2"],
            stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(400):
            if os.path.exists(self.sock):
                break
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        rc = self.proc.wait(60)
        self.log.close()
        if not os.environ.get("SD_TEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        return rc


D = None


def setUpModule():
    global D
    D = Daemon()
    with Client(D.sock) as c:
        c.model_add(DEMO, D.data, name="demo")
        job = c.tune("demo", max_drop="1%")["job"]
        done = c.wait_job(job, timeout=600)
        assert done["status"] == "done", done


def tearDownModule():
    assert D.stop() == 0, "searchd did not exit cleanly on SIGTERM"


class ClientTest(unittest.TestCase):
    def test_methods(self):
        with Client(D.sock) as c:
            self.assertEqual(c.ping(), "pong")
            info = c.info()
            self.assertIn("hardware", info)
            models = c.models()
            self.assertEqual([m["name"] for m in models], ["demo"])
            rec = c.get("demo", max_drop="1%")
            self.assertLess(rec["drop_upper"], 0.01)
            self.assertEqual(c.get("demo", max_drop=0.01), rec)
            front = c.frontier("demo")
            self.assertIn(rec["schedule"], [r["schedule"] for r in front])
            self.assertEqual(c.get("demo", max_flops="100%", minimize="flops")["model"],
                             rec["model"])
            self.assertIn("layer", c.profile("demo"))
            self.assertIn("changed", c.retune())
            self.assertEqual(c.job_status(1)["status"], "done")
            self.assertEqual(c.subscribe("demo")["subscribed"], True)
            self.assertIn("subscribed", c.unsubscribe("demo"))
            with self.assertRaises(SearchdError) as e:
                c.job_cancel(999)
            self.assertLess(e.exception.code, 0)
            with self.assertRaises(SearchdError) as e:
                c.get("nosuchmodel", max_drop="1%")
            self.assertIn("nosuchmodel", e.exception.message)
            with self.assertRaises(SearchdError) as e:
                c.call("no.such.method")

    def test_get_same_as_searchctl(self):
        with Client(D.sock) as c:
            rec = c.get("demo", max_drop="1%")
        out = json.loads(searchctl("get", "--socket", D.sock, "--model", "demo", "--max-drop",
                                   "1%", "--json"))
        self.assertEqual(out["schedule"], rec["schedule"])

    def test_share_parsing(self):
        self.assertEqual(parse_share("1%"), 0.01)
        self.assertEqual(parse_share("0.01"), 0.01)
        self.assertEqual(parse_share(0.01), 0.01)
        for bad in ("1", 1, "0.5", "x", "-1%", "200%"):
            with self.assertRaises(ValueError):
                parse_share(bad)

    def test_model_remove_unknown(self):
        with Client(D.sock) as c:
            with self.assertRaises(SearchdError):
                c.model_remove("nosuchmodel")


def compare_with_searchctl(test, answers, schedule):
    """Each answer's label and probabilities equal `searchctl classify`'s, same schedule."""
    texts = [a["text"] for a in answers]
    ref = json.loads(searchctl("classify", "--model", DEMO, "--schedule", schedule, "--json",
                               *texts))
    test.assertEqual(len(ref), len(answers))
    for a, r in zip(answers, ref):
        test.assertEqual(a["schedule"], schedule)
        test.assertEqual(a["label"], r["label"], a["text"])
        for name, p in r["probabilities"].items():
            test.assertAlmostEqual(a["probabilities"][name], p, delta=1e-9)


class ServiceTest(unittest.TestCase):
    def read_json(self, proc, timeout=120):
        if not hasattr(proc, "lines"):  # a thread reads stdout, so a silent service fails
            proc.lines = queue.Queue()   # the test instead of hanging it

            def pump():
                for out in proc.stdout:
                    proc.lines.put(out)
                proc.lines.put("")
            threading.Thread(target=pump, daemon=True).start()
        try:
            line = proc.lines.get(timeout=timeout)
        except queue.Empty:
            proc.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: its stacks on stderr
            proc.wait(10)
            self.fail(f"the example service said nothing in {timeout} s: {proc.stderr.read()}")
        if not line:
            self.fail("the example service ended: " + proc.stderr.read())
        return json.loads(line)

    def test_example_service(self):
        self.run_service([sys.executable, os.path.join(SOURCE, "examples", "classify_service.py")])

    def test_example_service_in_c(self):
        # examples/classify_service.c: the client library and libsdpy, the same answers.
        self.run_service([os.environ["SD_TEST_EXAMPLE_C"]])

    def run_service(self, argv):
        env = dict(os.environ, PYTHONFAULTHANDLER="1")
        proc = subprocess.Popen(argv + ["--socket", D.sock, "--model", "demo", "--max-drop", "1%"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        try:
            first = self.read_json(proc)
            self.assertEqual(first["event"], "schedule", first)
            with Client(D.sock) as c:
                self.assertEqual(first["schedule"], c.get("demo", max_drop="1%")["schedule"])
            answers = []
            for t in TEXTS:
                proc.stdin.write(t + "\n")
                proc.stdin.flush()
                answers.append(self.read_json(proc))
            compare_with_searchctl(self, answers, first["schedule"])

            # A new tune ends with schedule.updated: the service fetches the schedule again.
            with Client(D.sock) as c:
                job = c.tune("demo", max_drop="1%")["job"]
                self.assertEqual(c.wait_job(job, timeout=600)["status"], "done")
                now = c.get("demo", max_drop="1%")["schedule"]
            event = self.read_json(proc)
            self.assertEqual(event["event"], "schedule", event)
            self.assertEqual(event["reason"], "tune")
            self.assertEqual(event["schedule"], now)
            answers = []
            for t in TEXTS:
                proc.stdin.write(t + "\n")
                proc.stdin.flush()
                answers.append(self.read_json(proc))
            compare_with_searchctl(self, answers, now)
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
            if proc.poll() is None:
                self.assertEqual(proc.wait(60), 0, proc.stderr.read())
            proc.stdout.close()
            proc.stderr.close()


class ModelTest(unittest.TestCase):
    def test_threads_and_batches(self):
        m = Model(DEMO)
        self.assertEqual(m.labels, ["negative", "positive"])
        self.assertEqual(m.family, "BERT")
        sched = "attn:1,0.7,0.5,0.3"
        one = [m.classify(t, schedule=sched) for t in TEXTS]
        batch = m.classify(TEXTS, schedule=sched)
        self.assertEqual([p.probabilities for p in one], [p.probabilities for p in batch])
        results, errors = [None] * 8, []

        def work(i):
            try:
                for _ in range(20):
                    got = m.classify(TEXTS, schedule=sched)
                    if [p.probabilities for p in got] != [p.probabilities for p in batch]:
                        errors.append(i)
                results[i] = True
            except Exception as e:  # reported below
                errors.append(repr(e))
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertTrue(all(results))
        ref = json.loads(searchctl("classify", "--model", DEMO, "--schedule", sched, "--json",
                                   *TEXTS))
        self.assertEqual([p.label for p in batch], [r["label"] for r in ref])
        pair = m.classify(["a premise"], pairs=["a hypothesis"])[0]
        ref = json.loads(searchctl("classify", "--model", DEMO, "--pair", "a hypothesis",
                                   "--json", "a premise"))[0]
        self.assertEqual(pair.tokens, ref["tokens"])
        self.assertAlmostEqual(pair.probabilities["positive"], ref["probabilities"]["positive"],
                               delta=1e-9)

    def test_errors(self):
        with self.assertRaises(ValueError) as e:
            Model("/nonexistent/model")
        self.assertIn("/nonexistent/model", str(e.exception))
        m = Model(DEMO)
        with self.assertRaises(ValueError) as e:
            m.classify(["x"], schedule="attn:1,0.5")
        self.assertIn("layers", str(e.exception))


class WidthTest(unittest.TestCase):
    """Runs last (classes go in name order): its search narrows the demo model's schedules."""

    def test_narrowed_record_same_as_searchctl(self):
        with Client(D.sock) as c:
            job = c.tune("demo", max_drop="1%", width=True, int8=True)["job"]
            self.assertEqual(c.wait_job(job, timeout=600)["status"], "done")
            narrowed = [r for r in c.frontier("demo") if "width" in r]
            self.assertTrue(narrowed, "a width search kept no narrowed record")
            rec = narrowed[0]
        m = Model(DEMO)
        got = m.classify(TEXTS, schedule=rec)
        # the same record through the C client library (sdc_apply_width) and the engine: a
        # budget whose answer narrows layers (the most accurate within a narrowed record's FLOPs)
        same, budget = None, None
        with Client(D.sock) as c:
            for r in sorted(narrowed, key=lambda r: -r["accuracy"]):
                answer = c.get("demo", max_flops=r["flops_ratio"] + 1e-9)
                if "width" in answer:
                    same, budget = answer, ["--max-flops", repr(r["flops_ratio"] + 1e-9)]
                    break
        if same is None:
            self.skipTest("every narrowed record is out-answered by a cheaper whole one")
        ref = [json.loads(line) for line in searchctl(
            "classify", "--daemon", "--socket", D.sock, "--model", "demo", *budget, "--json",
            *TEXTS).splitlines() if line.strip()]
        mine = m.classify(TEXTS, schedule=same)
        self.assertEqual([r["schedule"] for r in ref], [same["schedule"]] * len(TEXTS))
        for p, r in zip(mine, ref):
            self.assertEqual(p.label, r["label"])
            self.assertAlmostEqual(p.probabilities["positive"], r["probabilities"]["positive"],
                                   delta=1e-9)
        self.assertEqual(len(got), len(TEXTS))
        # the text alone cannot say which heads and neurons: refused, not run whole
        with self.assertRaises(ValueError) as e:
            m.classify(TEXTS, schedule=rec["schedule"])
        self.assertIn("record", str(e.exception))


class DocsTest(unittest.TestCase):
    def test_schedule_is_documented(self):
        # Issue 10 item 3: the schedule's meaning lives in the repository (docs/schedule.md).
        with open(os.path.join(SOURCE, "docs", "schedule.md")) as f:
            doc = f.read()
        for word in ("attn", "power", "cls", "context", "drop_upper", "(0, 1]", "[CLS]",
                     "## Width and precision", "heads:", "ffn:", "int8", "sdc_apply_width"):
            self.assertIn(word, doc)
        # Its example: 25 tokens under attn:1,0.7,0.5,0.3 keep 25, 18, 13 and 8 rows.
        self.assertIn("attn:1,0.7,0.5,0.3", doc)
        self.assertEqual([max(1, int(r * 25 + 0.5)) for r in (1, 0.7, 0.5, 0.3)], [25, 18, 13, 8])
        self.assertIn("keeps 18, 13 and 8", doc)
        searchctl("classify", "--model", DEMO, "--schedule", "attn:1,0.7,0.5,0.3", "a text")
        # its width-and-precision example is a valid schedule for a 6-layer model: the engine
        # parses it and asks for the record that says which heads and neurons
        example = doc.split("Example: `")[1].split("`")[0]
        six = Model(os.path.join(SHARED, "models", "sst2-bert-L6-H256"))
        with self.assertRaises(ValueError) as e:
            six.classify("a text", schedule=example)
        self.assertIn("pass the record", str(e.exception))


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    bad = len(result.failures) + len(result.errors)
    print(f"python: {result.testsRun - bad} passed, {bad} failed")
    sys.exit(0 if bad == 0 and result.wasSuccessful() else 1)
