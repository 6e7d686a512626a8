/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-recorder.so: the co-run trace recorder as a QEMU TCG plugin (issue 12), built against
 * the plugin header of the QEMU 7.2 source the patch series applies to (qemu-7.2/qemu-plugin.h,
 * copied unchanged; plugin API version 1), and as hmmv-recorder-api4.so against 10.0's
 * (qemu-10.0/, API 4: 10.0 loads API 2-4 only).  Every guest load and store on RAM goes through
 * the LLC model; the misses are counted per guest page and written as a version 3 trace
 * (recorder.h).  One vCPU is expected (the co-run VMs have one); a lock keeps more correct.
 *
 *   -plugin hmmv-recorder.so,out=vm0.trace,ram_mib=64[,stats=vm0.stats.json]
 *           [,llc_kib=4096][,llc_ways=16][,interval_insns=50000000][,ns_per_insn_ps=500]
 *           [,intervals=N][,start=boot|mark]
 *
 * start=mark counts nothing (no instructions, no accesses) until the guest executes the start
 * mark, the 7-byte no-op `nopl 0x484d4d56(%rax)` (0f 1f 80 56 4d 4d 48: "VMMH"), which no
 * compiler emits: a Linux guest marks where its workload starts (tests/corun/redis-guest),
 * so its trace is the workload and not the kernel's boot. It then prints "hmmv-recorder: start
 * mark after N instructions"; the stats say how many instructions came before it.
 *
 * With intervals=N the trace is complete (closed) after N intervals and nothing more is
 * counted. Each interval written prints "hmmv-recorder: interval K" (" complete" after the
 * last) through qemu_plugin_outs, which QEMU shows only with -d plugin (-D FILE).
 * At QEMU's exit the last interval is written and stats (JSON: instructions, intervals,
 * accesses, LLC misses, dropped non-RAM accesses, I/O accesses) go to `stats`.
 */
#include "recorder.h"

#include <glib/gstdio.h>
#include <qemu-plugin.h>
#include <stdio.h>
#include <string.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static HmmvRecorder *recorder;
static GMutex lock;
static char *stats_path;
static HmmvRecorderOptions options;
static guint64 io_accesses;
static gboolean failed;
/* start=mark: nothing is counted before the mark (read unlocked on every access) */
static gboolean start_at_mark;
static gint started = 1;
static guint64 insns_before_start;
static const guint8 start_mark[] = { 0x0f, 0x1f, 0x80, 0x56, 0x4d, 0x4d, 0x48 };

static void
fail(GError *error)
{
  g_autofree char *line = g_strdup_printf("hmmv-recorder: %s\n", error->message);

  /* once: the trace is useless from here, QEMU and the guest carry on */
  if (!failed)
    qemu_plugin_outs(line);
  failed = TRUE;
  g_error_free(error);
}

static void
vcpu_mem(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
  struct qemu_plugin_hwaddr *hw;

  if (!g_atomic_int_get(&started))
    return;
  hw = qemu_plugin_get_hwaddr(info, vaddr);
  g_mutex_lock(&lock);
  if (hw == NULL || qemu_plugin_hwaddr_is_io(hw))
    io_accesses++;
  else
    hmmv_recorder_access(recorder, qemu_plugin_hwaddr_phys_addr(hw),
                         qemu_plugin_mem_is_store(info));
  g_mutex_unlock(&lock);
}

static void
vcpu_tb_exec(unsigned int vcpu, void *udata)
{
  GError *error = NULL;

  HmmvRecorderStats before, after;

  g_mutex_lock(&lock);
  if (!g_atomic_int_get(&started)) {
    insns_before_start += GPOINTER_TO_SIZE(udata);
    g_mutex_unlock(&lock);
    return;
  }
  hmmv_recorder_get_stats(recorder, &before);
  if (!failed && !hmmv_recorder_add_insns(recorder, GPOINTER_TO_SIZE(udata), &error))
    fail(error);
  hmmv_recorder_get_stats(recorder, &after);
  if (after.intervals != before.intervals) {
    /* progress for a co-run driver reading QEMU's log (-d plugin -D FILE): one line an
     * interval (50M instructions by default: a few a second at most) */
    char line[96];

    g_snprintf(line, sizeof(line), "hmmv-recorder: interval %" G_GUINT64_FORMAT "%s\n",
               after.intervals, hmmv_recorder_is_complete(recorder) ? " complete" : "");
    qemu_plugin_outs(line);
  }
  g_mutex_unlock(&lock);
}

static void
vcpu_mark(unsigned int vcpu, void *udata)
{
  char line[96];

  g_mutex_lock(&lock);
  if (!g_atomic_int_get(&started)) {
    g_atomic_int_set(&started, 1);
    g_snprintf(line, sizeof(line), "hmmv-recorder: start mark after %" G_GUINT64_FORMAT
               " instructions\n", insns_before_start);
    qemu_plugin_outs(line);
  }
  g_mutex_unlock(&lock);
}

static gboolean
is_start_mark(const struct qemu_plugin_insn *insn)
{
  guint8 bytes[sizeof(start_mark)];

  if (qemu_plugin_insn_size(insn) != sizeof(start_mark))
    return FALSE;
#if QEMU_PLUGIN_VERSION >= 3
  if (qemu_plugin_insn_data(insn, bytes, sizeof(bytes)) != sizeof(bytes))
    return FALSE;
#else
  memcpy(bytes, qemu_plugin_insn_data(insn), sizeof(bytes));
#endif
  return memcmp(bytes, start_mark, sizeof(bytes)) == 0;
}

static void
vcpu_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
  size_t n = qemu_plugin_tb_n_insns(tb);

  /* the mark's own callback: only while it matters (TBs translated later need none) */
  if (!g_atomic_int_get(&started)) {
    for (size_t i = 0; i < n; i++) {
      struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);

      if (is_start_mark(insn))
        qemu_plugin_register_vcpu_insn_exec_cb(insn, vcpu_mark, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
  }

  qemu_plugin_register_vcpu_tb_exec_cb(tb, vcpu_tb_exec, QEMU_PLUGIN_CB_NO_REGS,
                                       GSIZE_TO_POINTER(n));
  for (size_t i = 0; i < n; i++)
    qemu_plugin_register_vcpu_mem_cb(qemu_plugin_tb_get_insn(tb, i), vcpu_mem,
                                     QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, NULL);
}

static void
write_stats(void)
{
  HmmvRecorderStats s;
  g_autofree char *json = NULL;
  g_autoptr(GError) error = NULL;

  hmmv_recorder_get_stats(recorder, &s);
  json = g_strdup_printf("{\"instructions\": %" G_GUINT64_FORMAT ", \"intervals\": %"
                         G_GUINT64_FORMAT ", \"accesses\": %" G_GUINT64_FORMAT
                         ", \"llc_misses\": %" G_GUINT64_FORMAT ", \"dropped\": %"
                         G_GUINT64_FORMAT ", \"io_accesses\": %" G_GUINT64_FORMAT
                         ", \"saturated\": %" G_GUINT64_FORMAT ", \"llc_bytes\": %"
                         G_GUINT64_FORMAT ", \"llc_ways\": %u, \"interval_insns\": %"
                         G_GUINT64_FORMAT ", \"ns_per_insn\": %.3f, \"start\": \"%s\", "
                         "\"started\": %s, \"insns_before_start\": %" G_GUINT64_FORMAT
                         ", \"ok\": %s}\n",
                         s.instructions, s.intervals, s.accesses, s.misses, s.dropped,
                         io_accesses, s.saturated, options.llc_bytes, options.llc_ways,
                         options.interval_insns, options.ns_per_insn,
                         start_at_mark ? "mark" : "boot",
                         g_atomic_int_get(&started) ? "true" : "false", insns_before_start,
                         failed ? "false" : "true");
  if (!g_file_set_contents(stats_path, json, -1, &error))
    qemu_plugin_outs("hmmv-recorder: cannot write the stats file\n");
}

static void
plugin_exit(qemu_plugin_id_t id, void *udata)
{
  GError *error = NULL;

  g_mutex_lock(&lock);
  if (!failed && !hmmv_recorder_finish(recorder, &error))
    fail(error);
  if (stats_path != NULL)
    write_stats();
  hmmv_recorder_free(recorder);
  recorder = NULL;
  g_mutex_unlock(&lock);
}

static gboolean
parse_u64(const char *key, const char *value, guint64 max, guint64 *out)
{
  g_autoptr(GError) error = NULL;

  if (!g_ascii_string_to_unsigned(value, 10, 1, max, out, &error)) {
    g_autofree char *line = g_strdup_printf("hmmv-recorder: %s=%s: %s\n", key, value,
                                            error->message);

    qemu_plugin_outs(line);
    return FALSE;
  }
  return TRUE;
}

QEMU_PLUGIN_EXPORT int
qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
  g_autofree char *out = NULL;
  guint64 ram_mib = 0, llc_kib = 4096, ways = 16, ps = 500;
  GError *error = NULL;

  options.interval_insns = 50000000;
  for (int i = 0; i < argc; i++) {
    const char *eq = strchr(argv[i], '=');
    g_autofree char *key = eq ? g_strndup(argv[i], (gsize)(eq - argv[i])) : g_strdup(argv[i]);
    const char *value = eq ? eq + 1 : "";
    gboolean ok = TRUE;

    if (strcmp(key, "out") == 0) {
      g_free(out);
      out = g_strdup(value);
    } else if (strcmp(key, "stats") == 0) {
      g_free(stats_path);
      stats_path = g_strdup(value);
    } else if (strcmp(key, "ram_mib") == 0) {
      ok = parse_u64(key, value, 1u << 20, &ram_mib);
    } else if (strcmp(key, "llc_kib") == 0) {
      ok = parse_u64(key, value, 1u << 20, &llc_kib);
    } else if (strcmp(key, "llc_ways") == 0) {
      ok = parse_u64(key, value, HMMV_LLC_MAX_WAYS, &ways);
    } else if (strcmp(key, "interval_insns") == 0) {
      ok = parse_u64(key, value, G_GUINT64_CONSTANT(1) << 40, &options.interval_insns);
    } else if (strcmp(key, "intervals") == 0) {
      ok = parse_u64(key, value, G_GUINT64_CONSTANT(1) << 32, &options.max_intervals);
    } else if (strcmp(key, "start") == 0) {
      if (strcmp(value, "boot") == 0 || strcmp(value, "mark") == 0) {
        start_at_mark = strcmp(value, "mark") == 0;
      } else {
        g_autofree char *line = g_strdup_printf("hmmv-recorder: start=%s: boot or mark\n",
                                                value);

        qemu_plugin_outs(line);
        ok = FALSE;
      }
    } else if (strcmp(key, "ns_per_insn_ps") == 0) {
      ok = parse_u64(key, value, 1000000, &ps);
    } else {
      g_autofree char *line = g_strdup_printf("hmmv-recorder: unknown argument %s\n", argv[i]);

      qemu_plugin_outs(line);
      ok = FALSE;
    }
    if (!ok)
      return -1;
  }
  if (out == NULL || out[0] == '\0' || ram_mib == 0) {
    qemu_plugin_outs("hmmv-recorder: out=FILE and ram_mib=N are required\n");
    return -1;
  }
  if (info->system_emulation == false) {
    qemu_plugin_outs("hmmv-recorder: guest physical addresses need system emulation\n");
    return -1;
  }
  g_atomic_int_set(&started, start_at_mark ? 0 : 1);
  options.trace_path = out;
  options.ram_bytes = ram_mib << 20;
  options.llc_bytes = llc_kib << 10;
  options.llc_ways = (guint)ways;
  options.ns_per_insn = ps / 1000.0;
  recorder = hmmv_recorder_new(&options, &error);
  if (recorder == NULL) {
    g_autofree char *line = g_strdup_printf("hmmv-recorder: %s\n", error->message);

    qemu_plugin_outs(line);
    g_error_free(error);
    return -1;
  }
  options.trace_path = NULL;   /* out is freed on return; the writer keeps its own copy */
  qemu_plugin_register_vcpu_tb_trans_cb(id, vcpu_tb_trans);
  qemu_plugin_register_atexit_cb(id, plugin_exit, NULL);
  return 0;
}
