/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One VM's guest RAM layout and per-page state (two bytes a page, see vm.h, and two bits
 * for the churn counts, vm-private.h).
 */
#include "vm-private.h"

#include <hmmv/error.h>
#include <string.h>

/* 2^40 pages (4 PiB): anything larger is a corrupt size, not a VM. */
#define HMMV_VM_MAX_PAGES (G_GUINT64_CONSTANT(1) << 40)

static void
region_clear(gpointer data)
{
  HmmvRegion *region = data;

  g_free(region->name);
}

static gint
region_index_by_gpa(gconstpointer a, gconstpointer b, gpointer user_data)
{
  const HmmvVm *vm = user_data;
  guint64 ga = g_array_index(vm->regions, HmmvRegion, GPOINTER_TO_UINT(a)).gpa;
  guint64 gb = g_array_index(vm->regions, HmmvRegion, GPOINTER_TO_UINT(b)).gpa;

  return ga < gb ? -1 : ga > gb;
}

HmmvVm *
hmmv_vm_new(const char *name)
{
  HmmvVm *vm = g_new0(HmmvVm, 1);

  vm->name = g_strdup(name);
  vm->regions = g_array_new(FALSE, TRUE, sizeof(HmmvRegion));
  g_array_set_clear_func(vm->regions, region_clear);
  vm->by_gpa = g_tree_new_with_data(region_index_by_gpa, vm);
  vm->quota = (HmmvQuota){ .weight = 100, .managed = TRUE };
  vm->pid = -1;
  vm->cpu_node = -1;
  return vm;
}

void
hmmv_vm_free(HmmvVm *vm)
{
  if (vm == NULL)
    return;
  g_free(vm->name);
  g_clear_pointer(&vm->by_gpa, g_tree_destroy);
  g_array_unref(vm->regions);
  g_free(vm->temp);
  g_free(vm->warm);
  g_free(vm->temp_hist);
  g_free(vm->place);
  g_free(vm->backoff);
  g_free(vm->moved);
  g_free(vm->hot);
  g_free(vm->thp);
  if (vm->blocks != NULL)
    g_array_unref(vm->blocks);
  if (vm->units != NULL)
    g_array_unref(vm->units);
  g_free(vm);
}

/* The region just appended against the others, in O(log n): only its neighbours in gpa order
 * can overlap it (the regions in the tree do not overlap each other). A linear scan per
 * region took 21 s for the 120k ranges of one hostile 5.9 MB QMP reply. */
static gboolean
check_overlap(HmmvVm *vm, GError **error)
{
  guint index = vm->regions->len - 1;
  const HmmvRegion *region = &g_array_index(vm->regions, HmmvRegion, index);
  guint64 end = region->gpa + (region->nr_pages << HMMV_PAGE_SHIFT);
  GTreeNode *next = g_tree_lower_bound(vm->by_gpa, GUINT_TO_POINTER(index));
  GTreeNode *prev = next != NULL ? g_tree_node_previous(next) : g_tree_node_last(vm->by_gpa);
  const HmmvRegion *other = NULL;

  if (next != NULL) {
    const HmmvRegion *r = &g_array_index(vm->regions, HmmvRegion,
                                         GPOINTER_TO_UINT(g_tree_node_key(next)));
    if (r->gpa < end)
      other = r;
  }
  if (other == NULL && prev != NULL) {
    const HmmvRegion *r = &g_array_index(vm->regions, HmmvRegion,
                                         GPOINTER_TO_UINT(g_tree_node_key(prev)));
    if (r->gpa + (r->nr_pages << HMMV_PAGE_SHIFT) > region->gpa)
      other = r;
  }
  if (other != NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "vm %s: region %s overlaps region %s in guest-physical space", vm->name,
                region->name, other->name);
    return FALSE;
  }
  g_tree_insert(vm->by_gpa, GUINT_TO_POINTER(index), GUINT_TO_POINTER(index));
  return TRUE;
}

gboolean
hmmv_vm_add_region(HmmvVm *vm, const char *name, guint64 gpa, guint64 hva, guint64 size_bytes,
                   guint64 backing_page_size, GError **error)
{
  HmmvRegion region = { 0 };
  guint64 nr_pages = size_bytes >> HMMV_PAGE_SHIFT;

  if (vm->finalized) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "vm %s: layout is final, cannot add region %s", vm->name, name);
    return FALSE;
  }
  if (size_bytes == 0 || (size_bytes & (HMMV_PAGE_SIZE - 1)) != 0 ||
      (gpa & (HMMV_PAGE_SIZE - 1)) != 0 || (hva & (HMMV_PAGE_SIZE - 1)) != 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "vm %s: region %s: size 0x%" G_GINT64_MODIFIER "x, gpa 0x%" G_GINT64_MODIFIER
                "x and hva 0x%" G_GINT64_MODIFIER "x must be non-zero multiples of 4 KiB",
                vm->name, name, size_bytes, gpa, hva);
    return FALSE;
  }
  if (backing_page_size < HMMV_PAGE_SIZE || (backing_page_size & (backing_page_size - 1)) != 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "vm %s: region %s: backing page size %" G_GUINT64_FORMAT
                " is not a power of two >= 4096", vm->name, name, backing_page_size);
    return FALSE;
  }
  if (gpa + size_bytes < gpa || (hva != 0 && hva + size_bytes < hva) ||
      nr_pages > HMMV_VM_MAX_PAGES - vm->nr_pages) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "vm %s: region %s: size 0x%" G_GINT64_MODIFIER "x overflows", vm->name, name,
                size_bytes);
    return FALSE;
  }
  region.name = g_strdup(name);
  region.gpa = gpa;
  region.hva = hva;
  region.nr_pages = nr_pages;
  region.first_page = vm->nr_pages;
  region.backing_page_size = backing_page_size;
  g_array_append_val(vm->regions, region);
  if (!check_overlap(vm, error)) {
    g_array_set_size(vm->regions, vm->regions->len - 1);
    return FALSE;
  }
  vm->nr_pages += nr_pages;
  return TRUE;
}

/* The address a region's pages are aligned by: THPs and hugetlbfs pages sit at aligned host
 * addresses (guest-physical ones when the host address is not known: tests and the sim). */
static guint64
region_base(const HmmvRegion *region)
{
  return region->hva != 0 ? region->hva : region->gpa;
}

/* The 2 MiB blocks of the 4 KiB-backed regions, in page order: runs of pages whose addresses
 * share a 2 MiB block, the last one of a region joined with the first of the next when they
 * share it. */
static void
build_blocks(HmmvVm *vm)
{
  guint64 last_block_addr = G_MAXUINT64;

  vm->blocks = g_array_new(FALSE, FALSE, sizeof(HmmvUnit));
  for (guint i = 0; i < vm->regions->len; i++) {
    const HmmvRegion *region = &g_array_index(vm->regions, HmmvRegion, i);
    guint64 page = region->first_page, end = region->first_page + region->nr_pages;

    if (region->backing_page_size != HMMV_PAGE_SIZE) {
      last_block_addr = G_MAXUINT64;
      continue;
    }
    while (page < end) {
      guint64 addr = region_base(region) + ((page - region->first_page) << HMMV_PAGE_SHIFT);
      guint64 block_addr = addr & ~(HMMV_THP_SIZE - 1);
      guint64 next = MIN(end, page + ((block_addr + HMMV_THP_SIZE - addr) >> HMMV_PAGE_SHIFT));

      if (block_addr == last_block_addr && vm->blocks->len > 0 &&
          page == region->first_page) {
        g_array_index(vm->blocks, HmmvUnit, vm->blocks->len - 1).nr_pages += next - page;
      } else {
        HmmvUnit block = { .first_page = page, .nr_pages = next - page, .thp = TRUE };

        g_array_append_val(vm->blocks, block);
      }
      last_block_addr = block_addr;
      page = next;
    }
  }
  vm->nr_blocks = vm->blocks->len;
}

gboolean
hmmv_vm_finalize_layout(HmmvVm *vm, GError **error)
{
  gsize nr_alloc;

  if (vm->finalized)
    return TRUE;
  if (vm->nr_pages == 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "vm %s has no RAM regions",
                vm->name);
    return FALSE;
  }
  /* Round up to 8 so the scans can read whole 64-bit words; padding stays cold. */
  nr_alloc = (gsize)((vm->nr_pages + 7) & ~G_GUINT64_CONSTANT(7));
  vm->temp = g_try_malloc0(nr_alloc);
  vm->place = g_try_malloc(nr_alloc);
  if (vm->temp == NULL || vm->place == NULL) {
    /* Free both, so that a retry does not leak the one that succeeded. */
    g_clear_pointer(&vm->temp, g_free);
    g_clear_pointer(&vm->place, g_free);
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_FAILED,
                "vm %s: out of memory for the state of %" G_GUINT64_FORMAT " pages", vm->name,
                vm->nr_pages);
    return FALSE;
  }
  memset(vm->place, HMMV_PLACE_UNKNOWN_BYTE, nr_alloc);
  vm->nr_alloc = nr_alloc;
  build_blocks(vm);
  vm->thp = vm->nr_blocks > 0 ? g_new0(guint64, (vm->nr_blocks + 63) / 64) : NULL;
  vm->units = g_array_new(FALSE, FALSE, sizeof(HmmvUnit));
  vm->units_stale = TRUE;
  vm->finalized = TRUE;
  g_clear_pointer(&vm->by_gpa, g_tree_destroy);
  return TRUE;
}

const char *
hmmv_vm_get_name(const HmmvVm *vm)
{
  return vm->name;
}

guint64
hmmv_vm_get_nr_pages(const HmmvVm *vm)
{
  return vm->nr_pages;
}

guint
hmmv_vm_get_nr_regions(const HmmvVm *vm)
{
  return vm->regions->len;
}

const HmmvRegion *
hmmv_vm_get_region(const HmmvVm *vm, guint index)
{
  g_return_val_if_fail(index < vm->regions->len, NULL);
  return &g_array_index(vm->regions, HmmvRegion, index);
}

const HmmvRegion *
hmmv_vm_region_of_page(const HmmvVm *vm, guint64 page)
{
  guint lo = 0, hi = vm->regions->len;

  /* Regions are laid end to end in page-index order: binary search. */
  while (lo < hi) {
    guint mid = lo + (hi - lo) / 2;
    const HmmvRegion *region = &g_array_index(vm->regions, HmmvRegion, mid);

    if (page < region->first_page)
      hi = mid;
    else if (page >= region->first_page + region->nr_pages)
      lo = mid + 1;
    else
      return region;
  }
  return NULL;
}

guint64
hmmv_vm_page_to_hva(const HmmvVm *vm, guint64 page)
{
  const HmmvRegion *region = hmmv_vm_region_of_page(vm, page);

  if (region == NULL || region->hva == 0)
    return 0;
  return region->hva + ((page - region->first_page) << HMMV_PAGE_SHIFT);
}

guint64
hmmv_vm_page_to_gpa(const HmmvVm *vm, guint64 page)
{
  const HmmvRegion *region = hmmv_vm_region_of_page(vm, page);

  if (region == NULL)
    return G_MAXUINT64;
  return region->gpa + ((page - region->first_page) << HMMV_PAGE_SHIFT);
}

gboolean
hmmv_vm_gpa_to_page(const HmmvVm *vm, guint64 gpa, guint64 *page)
{
  for (guint i = 0; i < vm->regions->len; i++) {
    const HmmvRegion *region = &g_array_index(vm->regions, HmmvRegion, i);

    if (gpa >= region->gpa && ((gpa - region->gpa) >> HMMV_PAGE_SHIFT) < region->nr_pages) {
      *page = region->first_page + ((gpa - region->gpa) >> HMMV_PAGE_SHIFT);
      return TRUE;
    }
  }
  return FALSE;
}

void
hmmv_vm_set_pid(HmmvVm *vm, int pid)
{
  vm->pid = pid;
}

int
hmmv_vm_get_pid(const HmmvVm *vm)
{
  return vm->pid;
}

void
hmmv_vm_set_quota(HmmvVm *vm, const HmmvQuota *quota)
{
  vm->quota = *quota;
}

const HmmvQuota *
hmmv_vm_get_quota(const HmmvVm *vm)
{
  return &vm->quota;
}

void
hmmv_vm_set_budget_pages(HmmvVm *vm, guint64 budget_pages)
{
  vm->budget_pages = budget_pages;
}

guint64
hmmv_vm_get_budget_pages(const HmmvVm *vm)
{
  return vm->budget_pages;
}

const guint8 *
hmmv_vm_get_temp(const HmmvVm *vm)
{
  return vm->temp;
}

const guint8 *
hmmv_vm_get_place(const HmmvVm *vm)
{
  return vm->place;
}

guint8 *
hmmv_vm_get_temp_mut(HmmvVm *vm)
{
  vm->warm_valid = FALSE;   /* the caller may warm any block */
  return vm->temp;
}

guint8 *
hmmv_vm_get_place_mut(HmmvVm *vm)
{
  vm->cooling_builds = HMMV_PLACE_COOLDOWN_MAX;   /* the caller may set any cooldown */
  return vm->place;
}

void
hmmv_vm_set_page_node(HmmvVm *vm, guint64 page, int node_id, HmmvTier tier)
{
  guint8 old, new_place;

  /* nr_pages counts regions already added, but place exists only after finalize. */
  g_return_if_fail(vm->finalized && page < vm->nr_pages);
  old = vm->place[page];
  if (HMMV_PLACE_NODE(old) != HMMV_PLACE_NODE_UNKNOWN) {
    vm->node_pages[HMMV_PLACE_NODE(old)]--;
    if (HMMV_PLACE_IS_SLOW(old))
      vm->slow_pages--;
    else
      vm->dram_pages--;
  }
  if (node_id < 0 || node_id > HMMV_PLACE_MAX_NODE_ID) {
    new_place = HMMV_PLACE_UNKNOWN_BYTE;
    /* gone (not present): its next placement is a first one again */
    if (vm->moved != NULL)
      vm->moved[page >> 6] &= ~(G_GUINT64_CONSTANT(1) << (page & 63));
  } else {
    new_place = (guint8)node_id | (tier == HMMV_TIER_SLOW ? HMMV_PLACE_SLOW : 0);
    vm->first_seen += HMMV_PLACE_NODE(old) == HMMV_PLACE_NODE_UNKNOWN;
    vm->node_pages[node_id]++;
    if (tier == HMMV_TIER_SLOW)
      vm->slow_pages++;
    else
      vm->dram_pages++;
  }
  /* The cooldown bits belong to the planner; keep them. */
  vm->place[page] = (guint8)((old & ~(HMMV_PLACE_NODE_MASK | HMMV_PLACE_SLOW)) | new_place);
}

int
hmmv_vm_get_page_node(const HmmvVm *vm, guint64 page)
{
  guint node;

  g_return_val_if_fail(vm->finalized && page < vm->nr_pages, -1);
  node = HMMV_PLACE_NODE(vm->place[page]);
  return node == HMMV_PLACE_NODE_UNKNOWN ? -1 : (int)node;
}

guint64
hmmv_vm_get_dram_pages(const HmmvVm *vm)
{
  return vm->dram_pages;
}

guint64
hmmv_vm_get_slow_pages(const HmmvVm *vm)
{
  return vm->slow_pages;
}

guint64
hmmv_vm_get_node_pages(const HmmvVm *vm, int node_id)
{
  if (node_id < 0 || node_id > HMMV_PLACE_MAX_NODE_ID)
    return 0;
  return vm->node_pages[node_id];
}

void
hmmv_vm_set_cpu_node(HmmvVm *vm, int node_id)
{
  vm->cpu_node = node_id >= 0 && node_id <= HMMV_PLACE_MAX_NODE_ID ? node_id : -1;
}

int
hmmv_vm_get_cpu_node(const HmmvVm *vm)
{
  return vm->cpu_node;
}

void
hmmv_vm_set_allowed_nodes(HmmvVm *vm, guint32 mask)
{
  vm->allowed_nodes = mask;
}

guint32
hmmv_vm_get_allowed_nodes(const HmmvVm *vm)
{
  return vm->allowed_nodes;
}

void
hmmv_vm_count_nodes(const HmmvVm *vm, guint64 counts[HMMV_PLACE_MAX_NODE_ID + 1])
{
  memset(counts, 0, sizeof(guint64) * (HMMV_PLACE_MAX_NODE_ID + 1));
  if (!vm->finalized)
    return;
  for (guint64 page = 0; page < vm->nr_pages; page++) {
    guint node = HMMV_PLACE_NODE(vm->place[page]);

    if (node != HMMV_PLACE_NODE_UNKNOWN)
      counts[node]++;
  }
}

double
hmmv_vm_bytes_per_page(const HmmvVm *vm)
{
  if (vm->nr_pages == 0)
    return 0.0;
  return (double)(2 * vm->nr_alloc + sizeof(*vm) +
                  vm->regions->len * sizeof(HmmvRegion) + (vm->nr_blocks + 63) / 64 * 8 +
                  vm->nr_blocks * sizeof(HmmvUnit) +
                  (vm->units != NULL ? vm->units->len * sizeof(HmmvUnit) : 0) +
                  (vm->warm != NULL ? (vm->nr_pages / 64 + 63) / 64 * 8 : 0) +
                  (vm->temp_hist != NULL ? HMMV_NR_KEYS * sizeof(guint64) : 0) +
                  ((vm->moved != NULL) + (vm->hot != NULL)) *
                  hmmv_vm_page_bitmap_words(vm) * 8) /
         (double)vm->nr_pages;
}

gboolean
hmmv_vm_note_move_again(HmmvVm *vm, guint64 page)
{
  guint64 bit = G_GUINT64_CONSTANT(1) << (page & 63);
  gboolean again;

  g_return_val_if_fail(vm->finalized && page < vm->nr_pages, FALSE);
  if (vm->moved == NULL)
    vm->moved = g_new0(guint64, hmmv_vm_page_bitmap_words(vm));
  again = (vm->moved[page >> 6] & bit) != 0;
  vm->moved[page >> 6] |= bit;
  return again;
}

HmmvMoveStats *
hmmv_vm_get_move_stats(HmmvVm *vm)
{
  return &vm->move_stats;
}

/* Backoff byte: bits 2..0 failures in a row k (0 = none, capped at 7, so at most one try in
 * 128 intervals: 1,000 unmovable pages then cost ~8 of the cap's moves an interval), bits
 * 4..3 the cause of the last one, bit 5 refused for room since (vm.h: tried whatever its
 * phase). */
#define BACKOFF_LEVEL(b) ((guint)(b) & 0x7u)
#define BACKOFF_CAUSE(b) (((guint)(b) >> 3) & 0x3u)
#define BACKOFF_MAKE(level, cause) ((guint8)((level) | ((cause) << 3)))
#define BACKOFF_MAX_LEVEL 7u
#define BACKOFF_NO_ROOM 0x20u

void
hmmv_vm_note_move_failed(HmmvVm *vm, guint64 page, HmmvUnmovableCause cause)
{
  guint8 old;
  guint level;

  g_return_if_fail(vm->finalized && page < vm->nr_pages && cause < HMMV_NR_UNMOVABLE_CAUSES);
  if (vm->backoff == NULL)
    vm->backoff = g_malloc0(vm->nr_alloc);
  old = vm->backoff[page];
  if (BACKOFF_LEVEL(old) != 0)
    vm->unmovable.pages[BACKOFF_CAUSE(old)]--;
  level = MIN(BACKOFF_LEVEL(old) + 1, BACKOFF_MAX_LEVEL);
  vm->backoff[page] = BACKOFF_MAKE(level, cause);
  vm->unmovable.pages[cause]++;
}

void
hmmv_vm_note_move_no_room(HmmvVm *vm, guint64 page)
{
  g_return_if_fail(vm->finalized && page < vm->nr_pages);
  if (vm->backoff == NULL || BACKOFF_LEVEL(vm->backoff[page]) == 0)
    return;
  vm->backoff[page] |= BACKOFF_NO_ROOM;
}

void
hmmv_vm_note_moved(HmmvVm *vm, guint64 page)
{
  guint8 old;

  g_return_if_fail(vm->finalized && page < vm->nr_pages);
  if (vm->backoff == NULL)
    return;
  old = vm->backoff[page];
  if (BACKOFF_LEVEL(old) != 0)
    vm->unmovable.pages[BACKOFF_CAUSE(old)]--;
  vm->backoff[page] = 0;
}

gboolean
hmmv_vm_page_backed_off(const HmmvVm *vm, guint64 page, guint64 interval)
{
  guint level;

  if (vm->backoff == NULL || page >= vm->nr_pages)
    return FALSE;
  level = BACKOFF_LEVEL(vm->backoff[page]);
  return level != 0 && (vm->backoff[page] & BACKOFF_NO_ROOM) == 0 &&
         ((interval + page) & ((G_GUINT64_CONSTANT(1) << level) - 1)) != 0;
}

gboolean
hmmv_vm_page_move_failed(const HmmvVm *vm, guint64 page)
{
  return vm->backoff != NULL && page < vm->nr_pages && BACKOFF_LEVEL(vm->backoff[page]) != 0;
}

guint64
hmmv_vm_get_nr_backed_off(const HmmvVm *vm)
{
  guint64 total = 0;

  for (guint i = 0; i < HMMV_NR_UNMOVABLE_CAUSES; i++)
    total += vm->unmovable.pages[i];
  return total;
}

void
hmmv_vm_get_unmovable(const HmmvVm *vm, HmmvUnmovable *unmovable)
{
  *unmovable = vm->unmovable;
}

const char *
hmmv_unmovable_cause_to_string(HmmvUnmovableCause cause)
{
  static const char *const names[] = { "busy", "pinned", "shared", "other" };

  return cause < G_N_ELEMENTS(names) ? names[cause] : "unknown";
}

guint64
hmmv_vm_get_nr_thp_blocks(const HmmvVm *vm)
{
  return vm->nr_blocks;
}

guint64
hmmv_vm_thp_block_first_page(const HmmvVm *vm, guint64 block, guint64 *nr_pages)
{
  const HmmvUnit *b;

  if (!vm->finalized || block >= vm->nr_blocks)
    return G_MAXUINT64;
  b = &g_array_index(vm->blocks, HmmvUnit, block);
  if (nr_pages != NULL)
    *nr_pages = b->nr_pages;
  return b->first_page;
}

gboolean
hmmv_vm_page_thp_block(const HmmvVm *vm, guint64 page, guint64 *block)
{
  guint64 lo = 0, hi = vm->finalized ? vm->nr_blocks : 0;

  while (lo < hi) {
    guint64 mid = lo + (hi - lo) / 2;
    const HmmvUnit *b = &g_array_index(vm->blocks, HmmvUnit, mid);

    if (page < b->first_page)
      hi = mid;
    else if (page >= b->first_page + b->nr_pages)
      lo = mid + 1;
    else {
      *block = mid;
      return TRUE;
    }
  }
  return FALSE;
}

gboolean
hmmv_vm_set_thp(HmmvVm *vm, guint64 block, gboolean thp)
{
  guint64 bit = G_GUINT64_CONSTANT(1) << (block % 64);
  gboolean was;

  g_return_val_if_fail(vm->finalized && block < vm->nr_blocks, FALSE);
  was = (vm->thp[block / 64] & bit) != 0;
  if (was == !!thp)
    return FALSE;
  vm->thp[block / 64] ^= bit;
  vm->units_stale = TRUE;
  return TRUE;
}

gboolean
hmmv_vm_get_thp(const HmmvVm *vm, guint64 block)
{
  if (!vm->finalized || block >= vm->nr_blocks)
    return FALSE;
  return (vm->thp[block / 64] >> (block % 64)) & 1;
}

/* hugetlbfs regions give fixed units of their page size, aligned like the mapping (a range
 * that starts or ends inside a huge page gets that part as a unit of its own); 4 KiB-backed
 * regions give their THP blocks. */
static void
units_rebuild(HmmvVm *vm)
{
  guint64 block = 0, last_unit_addr = G_MAXUINT64, last_unit_size = 0;

  g_array_set_size(vm->units, 0);
  for (guint i = 0; i < vm->regions->len; i++) {
    const HmmvRegion *region = &g_array_index(vm->regions, HmmvRegion, i);
    guint64 page = region->first_page, end = region->first_page + region->nr_pages;
    guint64 size = region->backing_page_size;

    if (size == HMMV_PAGE_SIZE) {
      /* the region's THP blocks, in page order */
      for (; block < vm->nr_blocks; block++) {
        const HmmvUnit *b = &g_array_index(vm->blocks, HmmvUnit, block);

        if (b->first_page >= end)
          break;
        if (hmmv_vm_get_thp(vm, block) &&
            (vm->units->len == 0 ||
             g_array_index(vm->units, HmmvUnit, vm->units->len - 1).first_page != b->first_page))
          g_array_append_val(vm->units, *b);
      }
      last_unit_addr = G_MAXUINT64;
      continue;
    }
    /* hugetlbfs: the huge pages the region's pages are in; one shared with the previous
     * region (the same huge page of the same size) is one unit */
    while (page < end) {
      guint64 addr = region_base(region) + ((page - region->first_page) << HMMV_PAGE_SHIFT);
      guint64 unit_addr = addr & ~(size - 1);
      guint64 next = MIN(end, page + ((unit_addr + size - addr) >> HMMV_PAGE_SHIFT));

      if (unit_addr == last_unit_addr && size == last_unit_size && vm->units->len > 0 &&
          page == region->first_page) {
        g_array_index(vm->units, HmmvUnit, vm->units->len - 1).nr_pages += next - page;
      } else {
        HmmvUnit unit = { .first_page = page, .nr_pages = next - page };

        g_array_append_val(vm->units, unit);
      }
      last_unit_addr = unit_addr;
      last_unit_size = size;
      page = next;
    }
  }
  vm->units_stale = FALSE;
}

HmmvUnit *
hmmv_vm_get_units(HmmvVm *vm, guint64 *nr)
{
  g_return_val_if_fail(vm->finalized, (*nr = 0, NULL));
  if (vm->units_stale)
    units_rebuild(vm);
  *nr = vm->units->len;
  return (HmmvUnit *)(void *)vm->units->data;
}

const HmmvUnit *
hmmv_vm_unit_of(HmmvVm *vm, guint64 page)
{
  guint64 nr, lo = 0, hi;
  const HmmvUnit *units = hmmv_vm_get_units(vm, &nr);

  hi = nr;
  while (lo < hi) {
    guint64 mid = lo + (hi - lo) / 2;

    if (page < units[mid].first_page)
      hi = mid;
    else if (page >= units[mid].first_page + units[mid].nr_pages)
      lo = mid + 1;
    else
      return &units[mid];
  }
  return NULL;
}

guint64
hmmv_vm_unit_pages(HmmvVm *vm, guint64 page)
{
  const HmmvUnit *unit = hmmv_vm_unit_of(vm, page);

  return unit != NULL ? unit->nr_pages : 1;
}

void
hmmv_vm_get_huge_pages(HmmvVm *vm, guint64 *thp_pages, guint64 *hugetlb_pages)
{
  guint64 nr;
  const HmmvUnit *units = hmmv_vm_get_units(vm, &nr);

  *thp_pages = *hugetlb_pages = 0;
  for (guint64 i = 0; i < nr; i++) {
    if (units[i].thp)
      *thp_pages += units[i].nr_pages;
    else
      *hugetlb_pages += units[i].nr_pages;
  }
}
