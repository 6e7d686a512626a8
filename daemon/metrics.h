/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Metrics in the Prometheus text exposition format 0.0.4: per VM (label vm="NAME") and per
 * node. Served as GET /metrics over HTTP on a loopback address only, and/or written to a
 * textfile-collector file (atomically: a temporary file renamed over it) after each interval.
 *
 *   hmmvd.c: metrics = hmmvd_metrics_new(vms, topo, config->metrics_listen,
 *                                        config->metrics_textfile, &error);
 *            after every hmmvd_vms_run_interval(): hmmvd_metrics_interval_done(metrics, &error)
 */
#pragma once

#include <gio/gio.h>

#include "vms.h"

G_BEGIN_DECLS

/* GET requests larger than this are refused (a scraper's request is ~200 bytes). */
#define HMMVD_METRICS_MAX_REQUEST 8192u
/* Scrapes served at once; more wait in the kernel's listen backlog. */
#define HMMVD_METRICS_MAX_CLIENTS 8u

typedef struct _HmmvdMetrics HmmvdMetrics;

/* listen: "" (no HTTP) or HOST:PORT on loopback ("127.0.0.1:9464", "[::1]:9464",
 * "localhost:9464"; port 0 picks a free port). textfile: "" or an absolute path. vms and
 * topo are borrowed and must outlive the metrics. */
/* A scrape, from the connection to the last byte of the reply, must be over within this:
 * trickling clients (any local user can connect) cannot hold the slots. */
#define HMMVD_METRICS_REQUEST_DEADLINE_MS 10000u

HmmvdMetrics *hmmvd_metrics_new(HmmvdVms *vms, const HmmvTopology *topo, const char *listen,
                                const char *textfile, GError **error);
void hmmvd_metrics_free(HmmvdMetrics *metrics);
/* For tests: the per-connection deadline (default HMMVD_METRICS_REQUEST_DEADLINE_MS). */
void hmmvd_metrics_set_request_deadline_ms(HmmvdMetrics *metrics, guint deadline_ms);
/* The HTTP port actually bound (useful with port 0); 0 when HTTP is off. */
guint16 hmmvd_metrics_get_port(const HmmvdMetrics *metrics);
/* Rewrites the textfile when one is configured. */
gboolean hmmvd_metrics_interval_done(HmmvdMetrics *metrics, GError **error);

/* The whole exposition text. */
char *hmmvd_metrics_format(HmmvdVms *vms, const HmmvTopology *topo);
/* Building blocks, exposed for tests: a label value escaped per the format (\\, \", \n). */
char *hmmvd_metrics_escape_label(const char *value);
/* "# HELP name help\n# TYPE name type\n" (help escapes \\ and \n). */
void hmmvd_metrics_append_family(GString *out, const char *name, const char *type,
                                 const char *help);
/* name{k1="v1",k2="v2"} value\n; labels is a NULL-terminated list of key, value pairs. */
void hmmvd_metrics_append_sample(GString *out, const char *name, const char *const *labels,
                                 guint64 value);

/* Parses and checks a listen address: loopback only, clear error otherwise. */
gboolean hmmvd_metrics_parse_listen(const char *listen, GSocketAddress **address,
                                    GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvdMetrics, hmmvd_metrics_free)

G_END_DECLS
