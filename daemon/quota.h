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

#define HMMVD_QUOTA_MAX_WEIGHT 10000u
/* 1 EiB: the largest MiB figure accepted anywhere, so that pages (MiB << 8) and sums of
 * thousands of them cannot overflow 64 bits. */
#define HMMVD_QUOTA_MAX_MIB (G_GUINT64_CONSTANT(1) << 40)
#define HMMVD_PAGES_PER_MIB ((guint64)((1u << 20) / HMMV_PAGE_SIZE))

/* Quota metadata: <memory dram-min-mib="256" dram-max-mib="1024" weight="100"
 * managed="yes"/>. Every attribute is optional (absent: the default quota's value). */
gboolean hmmvd_quota_parse(const char *xml, const HmmvQuota *defaults, HmmvQuota *quota,
                           GError **error);
/* The whole element: the quota, and the backends to exclude from its <exclude
 * backend="NAME"/> children (a NULL-ended list, empty when none; the caller's). */
#define HMMVD_EXCLUDE_MAX 64u
/* The status of a VM left unmanaged for its metadata (malformed, or an exclusion that names no
 * backend of it, or all of them) until the metadata changes. */
#define HMMVD_METADATA_REJECTED "hmmv metadata rejected: "
#define HMMVD_EXCLUDE_MAX_NAME 128u
gboolean hmmvd_metadata_parse(const char *xml, const HmmvQuota *defaults, HmmvQuota *quota,
                              char ***exclude, GError **error);
/* The exclusion alone, <memory>'s quota attributes not looked at: it fails only when the
 * element's structure or an <exclude> child is wrong, so a malformed quota (dram-min-mib="lots")
 * still says which backends to leave alone. */
gboolean hmmvd_metadata_parse_exclude(const char *xml, char ***exclude, GError **error);
/* A backend name as exclude takes it (hmmvd.conf's too): 1..128 of letters, digits - . _ / :
 * [ ]; the error says what is wrong. */
gboolean hmmvd_quota_check_backend(const char *name, GError **error);
/* The element again, with exclude's <exclude> children (NULL or empty: none). */
char *hmmvd_quota_format(const HmmvQuota *quota, const char *const *exclude);
/* "256" -> pages: decimal digits only, at most HMMVD_QUOTA_MAX_MIB; the error says why
 * (empty, negative, not a number, too large) without naming the field. */
gboolean hmmvd_quota_parse_mib(const char *text, guint64 *pages, GError **error);
/* min <= max, weight 1..10000, min within host DRAM. vm_pages or pool_pages 0: unknown, that
 * check is skipped. */
gboolean hmmvd_quota_validate(const HmmvQuota *quota, guint64 vm_pages, guint64 pool_pages,
                              GError **error);

G_END_DECLS
