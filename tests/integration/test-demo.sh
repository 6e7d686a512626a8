#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# scripts/demo end to end (suite 'integration', issue 12): the live co-run, standalone with
# quarter-size VMs (--small), under the recorder plugin and hmmvd --record-dir, then the replay
# of what it recorded. Checks that its output ENDS with the replay table (every policy, every
# VM of the demo) and the plots' paths (PNGs that exist), that the table is the CSV's, and that
# the recording is what the table says (setup.json, every VM's trace, hmmvd's view).
#
# With MODE libvirt (integration test `demo-libvirt`, issue 12 H3) the demo runs in libvirt mode
# instead, as it does whenever a libvirtd answers on qemu:///system: this script starts a private
# libvirtd (tests/integration/libvirt-lib.sh: its own mount and PID namespace, private copies of
# libvirt's state; the host's is untouched), the demo finds it and starts its VMs as transient
# domains with the recorder passed through <qemu:commandline>, and the same checks follow; the
# demo must have said it ran in libvirt mode.
#
#   test-demo.sh SOURCE_ROOT [MODE]   MODE standalone (default) or libvirt
#                                     (HMMV_BUILD_DIR: the build tree; HMMV_QEMU: the patched QEMU)
#
# Exit 0 pass, 1 fail, 77 skip (with the reason). The demo stops what it started by pid; this
# script stops the demo by its pid (SIGTERM, which the demo's cleanup handles) if it fails, then
# (libvirt) its libvirtd and virtlogd by pid.
set -uo pipefail
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
[[ $# -eq 1 || $# -eq 2 ]] || { echo "usage: $0 SOURCE_ROOT [standalone|libvirt]" >&2; exit 2; }
MODE=${2:-standalone}
[[ $MODE == standalone || $MODE == libvirt ]] || { echo "$0: unknown mode $MODE" >&2; exit 2; }
# shellcheck source=tests/integration/demo-lib.sh
. "$(dirname "$0")/demo-lib.sh"
if [[ $MODE == libvirt && ${HMMV_DEMO_TEST_NS:-} != 1 ]]; then
  [[ $(id -u) -eq 0 ]] || skip "needs root (starts its own libvirtd)"
  for tool in /usr/sbin/libvirtd /usr/sbin/virtlogd virsh unshare python3; do
    command -v "$tool" >/dev/null ||
      skip "$tool is not installed (libvirt-daemon-system, libvirt-clients, util-linux, python3)"
  done
  # --kill-child: if this test is killed (meson timeout), the namespace's init (this script)
  # gets SIGTERM, runs its cleanup, and the kernel kills whatever is left in the namespace
  HMMV_DEMO_TEST_NS=1 exec unshare --mount --propagation private --pid --fork --mount-proc \
    --kill-child=SIGTERM "$0" "$@"
fi
demo_setup "$1" "demo-$MODE"
probe=$("$HMMV_QEMU" -M none -display none -plugin /nonexistent/hmmv-probe.so 2>&1 </dev/null)
[[ $probe == *"plugin interface not enabled"* ]] &&
  skip "$HMMV_QEMU has no TCG plugin support: the demo would not record"

mode_args=(--standalone)
if [[ $MODE == libvirt ]]; then
  # shellcheck source=tests/integration/libvirt-lib.sh
  . "$(dirname "$0")/libvirt-lib.sh"
  URI=qemu:///system
  chmod 0755 "$WORK"
  trap 'demo_cleanup_libvirt' EXIT
  demo_cleanup_libvirt() {
    local keep=$WORK
    WORK=/nonexistent-hmmv-demo-test   # demo_cleanup stops the demo; WORK goes after libvirt
    demo_cleanup
    WORK=$keep
    libvirt_stop_daemons hmmv-demo-big hmmv-demo-small hmmv-demo-shift hmmv-demo-idle
    rm -rf "$WORK"
  }
  libvirt_private_state || exit 1
  libvirt_start_daemons || { tail -n 20 "$WORK/libvirtd.log"; fail "libvirtd does not start"; }
  echo "# private libvirtd $(/usr/sbin/libvirtd --version | awk '{print $NF}') (pid $LIBVIRTD_PID)"
  mode_args=()
fi

# 20 s of live view; the demo then waits for 3 recorded intervals of every VM (not a time)
demo_run "${mode_args[@]}" --small --seconds 20 --out "$WORK/out"
demo_check_rc 20
grep -q "mode: $MODE" "$WORK/stderr" ||
  { grep 'mode:' "$WORK/stderr"; fail "the demo did not run in $MODE mode"; }
echo "---- the end of the demo's output ----"
tail -n 24 "$WORK/stdout"
echo "--------------------------------------"

python3 - "$WORK/stdout" "$WORK/out" <<'PY' || exit 1
import csv, json, os, struct, sys

out, rec = sys.argv[1], sys.argv[2]
lines = [l.rstrip("\n") for l in open(out)]
while lines and not lines[-1].strip():
    lines.pop()
policies = ["all-dram", "first-touch", "interleave", "memory-mode", "numa-balancing", "damos",
            "memtierd", "memtis", "oracle", "hmmv-writes", "hmmv-reads-writes", "hmmv-ideal"]
vms = ["hmmv-demo-big", "hmmv-demo-small", "hmmv-demo-shift", "hmmv-demo-idle"]

# the end: "plots:", then only PNG paths, each a file of this run's --out
try:
    at = len(lines) - 1 - lines[::-1].index("plots:")
except ValueError:
    sys.exit("FAIL: no 'plots:' line in the demo's output")
paths = lines[at + 1:]
assert len(paths) >= 5, f"FAIL: {len(paths)} plot paths after 'plots:': {paths}"
for p in paths:
    assert p.startswith(os.path.join(rec, "plots") + "/") and p.endswith(".png"), \
        f"FAIL: after 'plots:' a line that is not a plot of {rec}: {p!r}"
    with open(p, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", f"FAIL: {p} is not a PNG"
# right before them, the table: a header, a separator, one row per policy
table = []
i = at - 1
while i >= 0 and not lines[i].strip():
    i -= 1
while i >= 0 and lines[i].startswith("|"):
    table.insert(0, lines[i])
    i -= 1
assert len(table) == 2 + len(policies), f"FAIL: the table before the plots: {table}"
header = [c.strip() for c in table[0].strip("|").split("|")]
assert header[0] == "policy" and header[1:1 + len(vms)] == vms and header[1 + len(vms)] == "all", \
    f"FAIL: table header {header}"
rows = {}
for line in table[2:]:
    cells = [c.strip() for c in line.strip("|").split("|")]
    rows[cells[0]] = cells
assert list(rows) == policies, f"FAIL: table policies {list(rows)}"
title = [l for l in lines[:i + 1] if l.startswith("hmmv-corun replay: setup demo")]
assert title, "FAIL: no 'hmmv-corun replay: setup demo' title above the table"

# what the table says is the CSV of the same replay, and the recording is there
setup = json.load(open(os.path.join(rec, "setup.json")))
assert [v["name"] for v in setup["vms"]] == vms, setup
whole = setup["whole_intervals"]
assert whole >= 3 and f"{whole} intervals" in title[-1], (whole, title[-1])
for vm in setup["vms"]:
    data = open(os.path.join(rec, vm["trace"]), "rb").read()
    magic, version, _, nr_pages, _, flags = struct.unpack_from("<8sIIQII", data)
    assert (magic, version) == (b"HMMVTRC1", 3) and nr_pages == vm["ram_mib"] * 256, vm
    off, n, last = 32, 0, 0
    while off < len(data):
        _, entries, _, index, insns = struct.unpack_from("<IIQQQ", data, off)
        assert index == n, (vm["name"], index, n)
        if n < whole and not vm["halted"]:
            assert insns >= setup["interval_insns"], (vm["name"], n, insns)
        off += 32 + 16 * entries
        n += 1
    # a running VM's trace holds the replayed intervals and the partial one at QEMU's exit; a
    # halted one's ends where its guest halted (the idle VM: HMMV-DONE on its serial port)
    assert off == len(data) and n >= 1 and (vm["halted"] or n > whole), (vm["name"], n, whole)
    seen = os.path.join(rec, "hmmvd", vm["name"] + ".trace")
    assert os.path.getsize(seen) > 32, f"FAIL: hmmvd recorded nothing for {vm['name']}"
results = list(csv.DictReader(open(os.path.join(rec, "plots", "results.csv"))))
assert len(results) == len(policies) * (len(vms) + 1), len(results)
for r in results:
    if r["vm"] == "all":
        continue
    cell = rows[r["policy"]][1 + vms.index(r["vm"])]
    ratio = float(r["runtime_ns"]) / float(r["all_dram_ns"])
    assert abs(float(cell) - ratio) < 0.0015, (r["policy"], r["vm"], cell, ratio)
assert all(c == "1.000" for c in rows["all-dram"][1:1 + len(vms) + 1]), rows["all-dram"]
print(f"ok: the demo ends with the replay table ({len(policies)} policies x {len(vms)} VMs, "
      f"{whole} intervals, hmmv-writes {rows['hmmv-writes'][1 + len(vms)]}x all-DRAM) and "
      f"{len(paths)} plot paths")
PY
