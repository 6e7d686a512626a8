/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The per-VM quota that operators set as libvirt domain metadata (virsh metadata).
 */
#pragma once

#include <hmmv/hmmv.h>

G_BEGIN_DECLS

/* The namespace of hmmv's libvirt domain metadata (documented in README.md). */
#define HMMVD_METADATA_URI "https://hmmv.dev/ns/quota/1"
#define HMMVD_METADATA_KEY "hmmv"

/* Quota metadata: <memory dram-min-mib="256" dram-max-mib="1024" weight="100"
 * managed="yes"/>. Every attribute is optional (absent: the default quota's value). */
gboolean hmmvd_quota_parse(const char *xml, const HmmvQuota *defaults, HmmvQuota *quota,
                           GError **error);
char *hmmvd_quota_format(const HmmvQuota *quota);
/* min <= max, weight 1..10000, min within host DRAM. */
gboolean hmmvd_quota_validate(const HmmvQuota *quota, guint64 vm_pages, guint64 pool_pages,
                              GError **error);

G_END_DECLS
