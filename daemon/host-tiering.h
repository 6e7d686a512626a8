/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Linux's own memory tiering on the host, which fights hmmvd over the same pages (issue 7):
 *
 *  - NUMA balancing (/proc/sys/kernel/numa_balancing, a bit mask): bit 0 (1, "normal") moves
 *    pages to the node of the CPU that touches them, bit 1 (2, "memory tiering", Linux 6.0+)
 *    promotes hot pages from CPU-less slow nodes on hint faults;
 *  - demotion in reclaim (/sys/kernel/mm/numa/demotion_enabled, Linux 5.15+): kswapd moves
 *    cold pages to the slow node instead of dropping them;
 *  - DAMOS schemes of kdamonds hmmv did not set up (DAMON sysfs) with an action that moves
 *    pages: migrate_hot, migrate_cold (Linux 6.11+), pageout; and the DAMON_RECLAIM module,
 *    which runs pageout itself (/sys/module/damon_reclaim/parameters/enabled).
 *
 * Everything is read, never written: the host runs its own kdamond, and whoever set these
 * decides. hmmvd warns once at start-up (what fights it and how to turn it off) and
 * `hmmvctl status` shows the state read at the time of the request.
 *
 * Paths are under a root prefix ("/" on a host), so that tests run on a fake tree.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Bounds of the DAMON tree walk: a tree larger than this is read in part and said so. */
#define HMMVD_TIERING_MAX_KDAMONDS 64u
#define HMMVD_TIERING_MAX_CONTEXTS 16u
#define HMMVD_TIERING_MAX_SCHEMES 64u

typedef struct {
  guint kdamond;
  guint context;
  guint scheme;
  char *operations;   /* "paddr", "vaddr", "fvaddr"; "?" when unreadable */
  char *action;       /* "migrate_hot", "migrate_cold" or "pageout" */
  int target_nid;     /* the node migrate_* moves to; -1 for pageout or unreadable */
} HmmvdDamosScheme;

typedef struct {
  int numa_balancing;       /* the mask; -1: no such file (kernel without NUMA balancing) */
  int demotion_enabled;     /* 1, 0; -1: no such file (kernel without demotion) */
  gboolean damon_reclaim;   /* the DAMON_RECLAIM module is enabled */
  GPtrArray *schemes;       /* HmmvdDamosScheme: running kdamonds' moving schemes */
  gboolean truncated;       /* the DAMON tree was larger than the bounds above */
  GPtrArray *errors;        /* char *: files that exist but could not be read or parsed */
} HmmvdHostTiering;

/* Reads the state under root ("/" on a host). damon_run_dir: where hmmv records its own
 * kdamonds (run_dir/kdamond-N, daemon/reads.c), which are skipped; NULL skips none. Never
 * fails: what cannot be read is in ->errors. */
HmmvdHostTiering *hmmvd_host_tiering_detect(const char *root, const char *damon_run_dir);
void hmmvd_host_tiering_free(HmmvdHostTiering *tiering);

/* Whether anything found moves pages between nodes behind hmmvd's back. */
gboolean hmmvd_host_tiering_active(const HmmvdHostTiering *tiering);
/* One line per finding: what it is, what it does to hmmvd's placement, and how to turn it
 * off. Empty when nothing fights hmmvd. */
GStrv hmmvd_host_tiering_describe(const HmmvdHostTiering *tiering);
/* Logs each finding as a warning (start-up). Returns how many. */
guint hmmvd_host_tiering_warn(const HmmvdHostTiering *tiering);
/* {"active": bool, "numa-balancing": N|null, "demotion-enabled": bool|null,
 *  "damon-reclaim": bool, "damos-schemes": [{"kdamond", "context", "scheme", "operations",
 *  "action", "target-nid"}], "truncated": bool, "warnings": [...], "errors": [...]} */
JsonNode *hmmvd_host_tiering_to_json(const HmmvdHostTiering *tiering);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvdHostTiering, hmmvd_host_tiering_free)

G_END_DECLS
