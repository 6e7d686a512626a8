/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The daemon suites' common test bed: default config, a two-tier topology, the sim mover, a
 * core and the VM table on top, torn down in the order the table needs (table first). */
#pragma once

#include "hmmv-test.h"
#include "daemon.h"

typedef struct {
  HmmvdConfig config;
  HmmvTopology *topo;
  HmmvMover *mover;
  HmmvCore *core;
  HmmvdVms *vms;
} HmmvdTestBed;

/* params: NULL for the defaults of hmmvd_config_init. */
void hmmvd_test_bed_init(HmmvdTestBed *bed, guint64 dram_bytes, guint64 slow_bytes,
                         const HmmvParams *params);
/* The same on a topology of the caller's, which the bed then owns. */
void hmmvd_test_bed_init_topology(HmmvdTestBed *bed, HmmvTopology *topo,
                                  const HmmvParams *params);
void hmmvd_test_bed_clear(HmmvdTestBed *bed);
/* A VM of nr_pages on a fake tracker, added to bed's table as pid 4242 (the test fails if the
 * table refuses it); returns the tracker, which the table owns. */
HmmvTracker *hmmvd_test_bed_add_vm(HmmvdTestBed *bed, const char *name, guint64 nr_pages,
                                   HmmvdSource source);
/* Queues writes of pages [first, first + nr) on a fake tracker. */
void hmmvd_test_write_pages(HmmvTracker *tracker, guint64 first, guint64 nr);

/* issue 10, item 7: nr_connections clients to address that each send one byte every 100 ms
 * and never finish a request, while the calling thread runs the default main context. Returns
 * how many the server closed; gives up after 60 s (liveness only). *bytes_sent: the most
 * bytes one connection got in before it was closed (a figure, not asserted). */
guint hmmvd_test_trickle(GSocketAddress *address, guint nr_connections, guint *bytes_sent);
