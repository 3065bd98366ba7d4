"""RenderHub on a BatchCompute node: render this instance's chunk with the node agent.

Shipped as ``renderhub_node.py`` next to the agent in the node package
(jobs/backends/batchcompute/package.py); standard library only, Python 3.8+. The specs
file (RENDERHUB_SPECS) holds the spec every chunk shares and one entry per instance;
BATCH_COMPUTE_DAG_INSTANCE_ID says which one is ours. The agent's JSON events go to
stdout and to a file in the mounted log folder, and its logs are copied there every few
seconds, so the manager can follow the render while it runs.
"""

# Kept as it ran for years inside a string: os.path and %-formatting.
# ruff: noqa: PTH100, PTH103, PTH110, PTH118, PTH120, UP031

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Node paths are below this root: empty on a real VM; a local emulator sets a folder.
ROOT = os.environ.get("RENDERHUB_NODE_ROOT", "")
LOGS = ("agent.log", "stdout.log", "stderr.log")
COPY_EVERY = 5.0


def node(path):
    return ROOT + path if ROOT and path.startswith("/") else path


def copy_logs(work_dir, log_dir):
    os.makedirs(log_dir, exist_ok=True)
    for name in LOGS:
        if os.path.exists(os.path.join(work_dir, name)):
            shutil.copyfile(os.path.join(work_dir, name), os.path.join(log_dir, name))


def main():
    index = int(os.environ["BATCH_COMPUTE_DAG_INSTANCE_ID"])
    with open(node(os.environ["RENDERHUB_SPECS"]), encoding="utf-8") as fh:
        specs = json.load(fh)
    entry = specs["instances"][index]
    spec = dict(specs["common"], task=entry["task"], frames=entry["frames"])
    for key in ("scene", "work_dir", "output_dir", "publish_dir"):
        spec[key] = node(spec[key])
    # The scene's files, copied from the mounts into the job's scene folder by the agent.
    spec["inputs"] = [
        {"src": node(i["src"]), "dst": node(i["dst"])} for i in spec.get("inputs") or []
    ]
    spec["cpus"] = spec.get("cpus") or os.cpu_count() or 1
    for key in ("work_dir", "output_dir", "publish_dir"):  # left by an earlier instance
        shutil.rmtree(spec[key], ignore_errors=True)
    os.makedirs(spec["work_dir"])
    spec_path = os.path.join(spec["work_dir"], "spec.json")
    with open(spec_path, "w", encoding="utf-8") as fh:
        json.dump(spec, fh)
    os.makedirs(node(specs["events_dir"]), exist_ok=True)
    events = os.path.join(node(specs["events_dir"]), "%d.%d.jsonl" % (index, time.time_ns()))
    log_dir = node(specs["logs_dir"]) + "task-%d/" % entry["task"]
    env = dict(os.environ, PYTHONPATH=HERE, PYTHONUNBUFFERED="1")
    agent = subprocess.Popen(
        [sys.executable, "-m", "renderhub.agent", spec_path], stdout=subprocess.PIPE, env=env
    )
    signal.signal(signal.SIGTERM, lambda *_: agent.send_signal(signal.SIGTERM))
    done = threading.Event()

    def keep_copying():
        while not done.wait(COPY_EVERY):
            copy_logs(spec["work_dir"], log_dir)

    threading.Thread(target=keep_copying, daemon=True).start()
    assert agent.stdout is not None
    for line in agent.stdout:
        sys.stdout.buffer.write(line)
        sys.stdout.flush()
        if line.startswith((b'{"event": "progress"', b'{"event": "log"')):
            continue  # the manager reads neither; fewer writes, fewer reads
        with open(events, "ab") as out:  # closed per event: a mounted object is saved on close
            out.write(line)
    code = agent.wait()
    done.set()
    copy_logs(spec["work_dir"], log_dir)
    return code


if __name__ == "__main__":
    sys.exit(main())
