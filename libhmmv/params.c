/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <hmmv/error.h>
#include <hmmv/params.h>
#include <hmmv/vm.h>

void
hmmv_params_init(HmmvParams *params)
{
  *params = (HmmvParams){
    .interval_ms = 1000,
    .write_weight = 2,
    .read_weight = 1,
    .hysteresis_keys = 16,
    .cooldown_intervals = 2,
    .promote_min_key = 0x10,
    .migrate_mbps = 200,
    .host_migrate_mbps = 1000,
    .move_cost_ns = 3900,
    .touch_saving_ns = 7200,
    .move_share_percent = 50,
  };
}

static gboolean
check_range(const char *name, guint value, guint min, guint max, GError **error)
{
  if (value < min || value > max) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "%s = %u is out of range [%u, %u]", name, value, min, max);
    return FALSE;
  }
  return TRUE;
}

gboolean
hmmv_params_validate(const HmmvParams *params, GError **error)
{
  /* 10 ms is below what a harvest + plan of a large VM takes; an hour is surely a typo. */
  return check_range("interval_ms", params->interval_ms, 10, 3600 * 1000, error) &&
         check_range("write_weight", params->write_weight, 0, HMMV_NR_LEVELS - 1, error) &&
         check_range("read_weight", params->read_weight, 0, HMMV_NR_LEVELS - 1, error) &&
         check_range("hysteresis_keys", params->hysteresis_keys, 0, HMMV_NR_KEYS - 1, error) &&
         check_range("cooldown_intervals", params->cooldown_intervals, 0,
                     HMMV_PLACE_COOLDOWN_MAX, error) &&
         check_range("promote_min_key", params->promote_min_key, 1, HMMV_NR_KEYS - 1, error) &&
         check_range("migrate_mbps", params->migrate_mbps, 0, 1000000, error) &&
         check_range("host_migrate_mbps", params->host_migrate_mbps, 0, 1000000, error) &&
         /* 1 ms per page or per touch is beyond any memory tier. */
         check_range("move_cost_ns", params->move_cost_ns, 0, 1000000, error) &&
         check_range("touch_saving_ns", params->touch_saving_ns, 0, 1000000, error) &&
         check_range("move_share_percent", params->move_share_percent, 0, 100, error);
}

static guint64
cap_pages(guint mbps, guint interval_ms)
{
  guint64 bytes = (guint64)mbps * 1000000u * interval_ms / 1000u;
  guint64 pages = bytes / HMMV_PAGE_SIZE;

  if (mbps == 0)
    return G_MAXUINT64;
  return pages > 0 ? pages : 1;
}

guint64
hmmv_params_cap_pages(const HmmvParams *params)
{
  return cap_pages(params->migrate_mbps, params->interval_ms);
}

guint64
hmmv_params_host_cap_pages(const HmmvParams *params)
{
  return cap_pages(params->host_migrate_mbps, params->interval_ms);
}
