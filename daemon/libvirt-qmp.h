/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP to libvirt domains (virDomainQemuMonitorCommand), off the main thread.
 *
 * libvirt waits for a QEMU's monitor reply without any timeout, so a QEMU that stops
 * answering (stopped, hung, hostile) used to hold hmmvd's main loop for as long as it liked.
 * Here every exchange runs on a bounded pool of threads, each with its own libvirt connection
 * (one call at a time on it); a domain's exchanges run in order, one at a time. An exchange's
 * deadline counts from when a thread sends it to QEMU (time spent waiting for a thread is not
 * its QEMU's doing), so its caller waits at most about twice the deadline: a domain whose
 * QEMU misses it fails with HMMV_ERROR_TIMED_OUT, and while that exchange is still under way
 * every later one fails at once instead of queueing behind it; one no thread took by the
 * caller's deadline fails HMMV_ERROR_BUSY (never sent later). The thread under an overdue
 * exchange is set aside: while fewer QEMUs hang than the pool has threads, the others serve
 * the healthy domains; with more, the healthy domains' exchanges fail BUSY at once (not sent)
 * until one answers. With N domains
 * hmmvd holds at most pool_size connections (and calls) into libvirtd, hung ones included,
 * not N: libvirtd's own workers (max_workers) stay free for everyone else.
 *
 * The harvest's hmmv-sync is taken off the interval too: hmmvd_libvirt_qmp_sync_begin() sends
 * it to every tracking domain at once, on their workers, while the main loop goes on; when all
 * have answered (or missed the deadline) the interval runs, and each tracker's hmmv-sync is
 * answered from what came back, without a round trip.
 */
#pragma once

#include <hmmv/hmmv.h>
#include <libvirt/libvirt.h>

G_BEGIN_DECLS

typedef struct _HmmvdLibvirtQmp HmmvdLibvirtQmp;

/* The QMP pool of one libvirt source. timeout_ms bounds each exchange; pool_size: most
 * threads (and connections, and calls into libvirtd) at once, set-aside ones included.
 * Reference counted:
 * the transports and the pool threads hold references. */
HmmvdLibvirtQmp *hmmvd_libvirt_qmp_new(guint timeout_ms, guint pool_size);
void hmmvd_libvirt_qmp_unref(HmmvdLibvirtQmp *lq);
/* The daemon's connection (a reference is taken); NULL while disconnected. Each pool thread
 * opens its own to the same URI (reopened when this changes), so a QEMU that stops answering
 * holds only the connection of the thread its exchange is on. */
void hmmvd_libvirt_qmp_set_connection(HmmvdLibvirtQmp *lq, virConnectPtr conn);

/* A transport to domain uuid (name for messages) while it runs as libvirt run id id: every
 * exchange checks the domain still runs as that id (a restarted domain is another QEMU). */
HmmvQmp *hmmvd_libvirt_qmp_transport_new(HmmvdLibvirtQmp *lq, const char *uuid,
                                         const char *name, int id, GError **error);
/* TRUE while an exchange with the domain is under way or queued, within its deadline or past
 * it (its QEMU missed it and has not answered yet): retrying it now would only queue behind
 * that exchange, and a libvirt call that takes the domain's job (SetMetadata) would wait for
 * it. */
gboolean hmmvd_libvirt_qmp_is_busy(HmmvdLibvirtQmp *lq, const char *uuid);
/* TRUE while the domain owes an answer past the exchange deadline (its QEMU missed it and has
 * not answered yet). Unlike is_busy, an exchange under way within its deadline (the interval's
 * hmmv-sync, sent to every tracking domain, frozen ones too) does not count. */
gboolean hmmvd_libvirt_qmp_is_overdue(HmmvdLibvirtQmp *lq, const char *uuid);

/* Sends hmmv-sync to every domain whose tracking is active, each on its worker; done(data)
 * runs on the calling thread's default main context once every domain has answered, or after
 * wait_ms (at most the exchange deadline). FALSE (and done is not called) when no domain is
 * tracking, or when every pool thread is set aside (nothing could be sent: the harvests fail
 * BUSY at once). The results are good for the next interval only: its harvests never wait; a
 * domain that has not answered yet gets no harvest (HMMV_ERROR_BUSY: the core takes it as a
 * harvest of 0 intervals, the VM still balanced and moved, libhmmv/loop.c), one past the
 * exchange deadline fails with HMMV_ERROR_TIMED_OUT (dropped). sync_end() drops what is
 * left. */
gboolean hmmvd_libvirt_qmp_sync_begin(HmmvdLibvirtQmp *lq, guint wait_ms, GSourceFunc done,
                                      gpointer data);
void hmmvd_libvirt_qmp_sync_end(HmmvdLibvirtQmp *lq);

/* Figures: pool threads at work (active), set aside (their exchange overdue, their QEMU not
 * answering), set aside ever, and their libvirt connections open. */
void hmmvd_libvirt_qmp_get_counts(HmmvdLibvirtQmp *lq, guint *active, guint *aside,
                                  guint *aside_total, guint *connections);
/* For tests: every exchange runs runner(uuid, command, data, error) on the pool thread instead
 * of libvirt (a fake libvirtd and QEMU: it may block as long as it likes, as libvirt does
 * for a QEMU that does not answer). Set before the first transport. */
typedef char *(*HmmvdLibvirtQmpRunner)(const char *uuid, const char *command, gpointer data,
                                       GError **error);
void hmmvd_libvirt_qmp_set_runner(HmmvdLibvirtQmp *lq, HmmvdLibvirtQmpRunner runner,
                                  gpointer data);

/* libvirt's last error on this thread as a GError (no domain, or not running: GONE). */
void hmmvd_libvirt_set_error(GError **error, const char *what);
const char *hmmvd_libvirt_last_error_message(void);

G_END_DECLS
