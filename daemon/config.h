/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd.conf: a GKeyFile; every key is documented in configs/hmmvd.conf; defaults live
 * in hmmvd_config_init().
 */
#pragma once

#include <hmmv/hmmv.h>

G_BEGIN_DECLS

typedef struct {
  /* [daemon] */
  guint interval_ms;
  char *control_socket;         /* path of the root-only control socket */
  char *log_level;              /* error, warning, message, info, debug */
  /* [libvirt] */
  gboolean libvirt_enabled;
  char *libvirt_uri;            /* qemu:///system */
  guint reconnect_ms;           /* retry period after libvirtd went away */
  char *libvirt_run_dir;        /* /run/libvirt/qemu: NAME.pid files */
  guint qmp_connections;        /* QMP pool: calls into libvirtd at once (libvirt-qmp.h) */
  /* [memory] */
  guint64 dram_pool_mib;        /* DRAM hmmv may lend to VMs; 0 = all DRAM nodes */
  char *mover;                  /* auto | numa | sim */
  char **slow_nodes;            /* tier overrides: node ids taken as slow */
  char **dram_nodes;            /* tier overrides: node ids taken as DRAM */
  guint64 sim_dram_mib;         /* sim mover: modelled DRAM (0 = the host's DRAM) */
  guint64 sim_slow_mib;         /* sim mover: modelled slow tier */
  guint64 node_pool_pages[HMMV_MAX_NODE_ID + 1]; /* per-node pool (node-pool-mib), 0 = what
                                                    the host can give */
  guint64 node_reserve_pages;   /* free memory left on each node for the host (numa mover) */
  /* [policy] -> HmmvParams */
  HmmvParams params;
  /* [defaults]: quota of a VM without metadata */
  HmmvQuota default_quota;
  /* [reads] */
  char *reads_source;           /* auto | damon-vaddr | idle-page | damon-paddr | none */
  char *reads_run_dir;          /* records of the kdamonds hmmv set up */
  /* [metrics] */
  char *metrics_listen;         /* "127.0.0.1:9464" or "" (off) */
  char *metrics_textfile;       /* path or "" (off) */
  /* [vm NAME] exclude = a;b: VM name -> NULL-ended backends it leaves alone (standalone VMs,
   * --qmp NAME=SOCKET; a libvirt domain's come from its metadata) */
  GHashTable *vm_exclude;
  /* hmmvd --record-dir only (benchmarks, not a key): each VM's harvests as traces here */
  char *record_dir;
} HmmvdConfig;

void hmmvd_config_init(HmmvdConfig *config);
/* Loads path over the defaults. An unknown group or key, or a bad value, is an error that
 * names the file, the line and the key. */
gboolean hmmvd_config_load(HmmvdConfig *config, const char *path, GError **error);
void hmmvd_config_clear(HmmvdConfig *config);
/* [vm NAME]'s exclude, NULL when none. */
const char *const *hmmvd_config_get_exclude(const HmmvdConfig *config, const char *vm_name);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(HmmvdConfig, hmmvd_config_clear)

G_END_DECLS
