/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Starting a real (patched) QEMU with the test guest for integration tests: serial on a
 * pipe, read line by line with timeouts, QMP on a Unix socket in a private directory. QEMU
 * dies with the test process (PR_SET_PDEATHSIG) and is killed and reaped by its pid in
 * hmmv_qemu_proc_free, so a failing test leaves nothing running.
 */
#pragma once

#include <gio/gio.h>
#include <glib.h>
#include <hmmv/hmmv.h>

typedef struct _HmmvQemuProc HmmvQemuProc;

/* The guest pfns in [first, first + count) whose pages acc marks written (vm's layout maps
 * page indexes to guest-physical addresses), as a set of GSIZE_TO_POINTER(pfn). */
GHashTable *hmmv_harness_written_pfns(HmmvVm *vm, const HmmvAccess *acc, guint64 first,
                                      guint64 count);

/* The patched QEMU (HMMV_QEMU) and the guest (HMMV_TEST_GUEST); NULL with a reason when the
 * host cannot run the test (the caller skips). */
gboolean hmmv_harness_find(char **qemu, char **guest, char **why);
/* The start of an integration suite's main(): root when root_why is given (it is then the
 * reason to skip without it), the patched QEMU and the guest found (hmmv_harness_find), and
 * SIGPIPE ignored (a write to a QEMU that died fails with EPIPE instead of ending the test).
 * FALSE with why when the host cannot run the suite (the caller skips). */
gboolean hmmv_harness_prepare(const char *root_why, char **qemu, char **guest, char **why);
/* TRUE when /dev/kvm opens and creates a VM; why says otherwise. */
gboolean hmmv_harness_kvm_usable(char **why);

/* QEMU's -accel argument for a test mode: "kvm" (the dirty ring, 4096 entries), "kvm-log"
 * (KVM's dirty log) or anything else ("tcg"). */
const char *hmmv_harness_accel(const char *mode);
/* Poll query-migrate every 100 ms until its status is want: FALSE with error when the
 * migration fails, QMP fails, or want does not come within timeout_ms (a liveness bound). */
gboolean hmmv_harness_wait_migration(HmmvQmp *qmp, const char *want, guint timeout_ms,
                                     GError **error);
/* FALSE when build.sh's BUILD-INFO beside the binary (bin/../BUILD-INFO) lists none of the
 * n patches (file names in qemu-patches/series or 10.0/series); *why then names the QEMU and
 * what (the feature they carry). A QEMU built some other way has no BUILD-INFO: TRUE. */
gboolean hmmv_harness_built_with(const char *qemu, const char *const *patches, gsize n,
                                 const char *what, char **why);

/* hmmv-start, daemon-paced (interval-ms 0), on a fresh sealable memfd named memfd_name and
 * passed with getfd as "region"; the region mapped read-write, its size and magic checked.
 * *fd, *map and *size are the caller's to unmap and close. */
gboolean hmmv_harness_start_export(HmmvQmp *qmp, const char *memfd_name, int *fd,
                                   guint8 **map, gsize *size, GError **error);
/* The same with QEMU's own publication timer (interval_ms; 0: daemon-paced) and the RAM
 * blocks named in exclude (NULL-ended, by backend id or block name; NULL: none) left out.
 * On failure *fd (when opened) and *map (when mapped) are still the caller's. */
gboolean hmmv_harness_start_export_full(HmmvQmp *qmp, const char *memfd_name,
                                        guint interval_ms, const char *const *exclude,
                                        int *fd, guint8 **map, gsize *size, GError **error);

/* accel: "tcg" or e.g. "kvm,dirty-ring-size=4096"; extra: more QEMU arguments (NULL-ended
 * vector, may be NULL); append: the guest's command line. */
HmmvQemuProc *hmmv_qemu_proc_start(const char *qemu, const char *guest, const char *accel,
                                   guint ram_mib, const char *append,
                                   const char *const *extra, GError **error);
void hmmv_qemu_proc_free(HmmvQemuProc *proc);
const char *hmmv_qemu_proc_get_qmp_path(HmmvQemuProc *proc);
const char *hmmv_qemu_proc_get_dir(HmmvQemuProc *proc);
int hmmv_qemu_proc_get_pid(HmmvQemuProc *proc);

/* Next serial line starting with prefix (others are skipped but kept in the log); NULL on
 * timeout or EOF. */
char *hmmv_qemu_proc_expect(HmmvQemuProc *proc, const char *prefix, guint timeout_ms);
/* Next serial line, whatever it is; NULL on timeout or EOF. */
char *hmmv_qemu_proc_read_line(HmmvQemuProc *proc, guint timeout_ms);
gboolean hmmv_qemu_proc_send(HmmvQemuProc *proc, const char *bytes, GError **error);
/* Run phase k of the test guest (started with wait=1: it prints "HMMV-WAIT phase k" and
 * waits for a byte), adding to expected (a set of GSIZE_TO_POINTER(pfn)) every pfn the
 * guest says it wrote ("HMMV-PHASE-PAGES k pfn..."), until "HMMV-PHASE-END". FALSE with
 * error when the guest does not say so within timeout_ms per line. */
gboolean hmmv_qemu_proc_run_phase(HmmvQemuProc *proc, guint k, GHashTable *expected,
                                  guint timeout_ms, GError **error);
/* Connect QMP (retrying while QEMU creates the socket). */
HmmvQmp *hmmv_qemu_proc_qmp(HmmvQemuProc *proc, GError **error);
/* Wait for QEMU to exit; its exit status, or -1 on timeout. */
int hmmv_qemu_proc_wait(HmmvQemuProc *proc, guint timeout_ms);
void hmmv_qemu_proc_kill(HmmvQemuProc *proc);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvQemuProc, hmmv_qemu_proc_free)

/* A second QMP monitor on the Unix socket SOCK that only listens for events: connected,
 * greeted, capabilities negotiated. Every read on it is bounded by TIMEOUT_S seconds (a
 * liveness bound, not a speed limit). */
gboolean hmmv_harness_events_connect(const char *sock, guint timeout_s, GSocketConnection **conn,
                                     GDataInputStream **in, GError **error);
