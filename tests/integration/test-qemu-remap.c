/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The export's layout follows the guest-physical map, not RAM blocks (issue 9, "Exactness and
 * coexistence"; 10.0's per-block layout patch), under TCG with the test guest, read over QMP
 * (query-hmmv-ramblocks, query-hmmv) and from the region's header and descriptors:
 *
 *   dimm-existing-memdev  a pc-dimm plugged with a memory backend that existed at hmmv-start
 *                         (no new RAM block): that block's descriptor says so (its
 *                         layout_generation 0 -> 1, REMAPPED), its range appears at 4 GiB,
 *                         the header's layout_generation moves, the region is not stale and
 *                         pc.ram's descriptor is untouched
 *   nic-rom-not-stale     a virtio-net card hot-plugged (a new RAM block: its option ROM):
 *                         nothing changes, neither pc.ram's descriptor nor the header
 *   dimm-unplug           a cold-plugged DIMM unplugged (device_del, then the guest's part of
 *                         ACPI memory hot-unplug done with HMP's port write: select slot 0,
 *                         eject): its block's descriptor says REMAPPED with generation 1, its
 *                         range is gone, nothing else changes
 *   new-memdev-stale      a DIMM with a memory backend created after hmmv-start: guest RAM
 *                         the region has no descriptor for, so the region is stale
 *                         (LAYOUT_STALE, query-hmmv's layout-stale)
 *   pam                   the i440FX's PAM register for 0xc0000-0xcffff cleared and restored
 *                         (PCI config writes through HMP's port write): pc.ram's descriptor
 *                         counts both changes and its ranges lose, then regain, that window;
 *                         then hmmv-stop changes no generation (its listener going away is
 *                         no layout change)
 *   tracker               libhmmv's qemu-dirty tracker, as hmmvd runs it: a NIC hot-plug
 *                         changes nothing (the harvest goes on, exact); PAM cleared and
 *                         restored between two harvests moves pc.ram's generation only, the
 *                         tracker re-reads that block alone, finds it as the VM has it and
 *                         goes on harvesting exactly; a DIMM plugged on m1 (which the VM never
 *                         had) is LAYOUT_CHANGED naming that block
 *
 * HMMV_LAYOUT_CHANGED is read on a second QMP monitor: stale false with the block's generation
 * for the DIMM on m1, stale true for the new backend, and none for the NIC (the first event
 * after it is the next real change's, a PAM write naming pc.ram).
 *
 * The consumer is the test itself (a memfd it maps). Skips (77) on a QEMU whose BUILD-INFO
 * lists no per-block layout patch (10.0 only: 7.2's series marks the whole export stale for
 * any RAM block).
 */
#include "../hmmv-test.h"
#include "qemu-harness.h"

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <hmmv/qemu.h>
#include <hmmv/shm-abi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SERIAL_TIMEOUT_MS 60000
#define RAM_MIB 128
#define FOUR_GIB (G_GUINT64_CONSTANT(4) << 30)
#define PAM_WINDOW 0xc0000u
/* i440FX PAM1: 0xc0000-0xc7fff (low nibble), 0xc8000-0xcffff (high nibble). */
#define I440FX_PAM1 0x5a

static char *qemu_path;
static char *guest_path;

typedef struct {
  HmmvQemuProc *proc;
  HmmvQmp *qmp;
  int fd;
  guint8 *map;
  gsize size;
  /* A second QMP monitor that only listens for events. */
  char *events_dir;
  GSocketConnection *events;
  GDataInputStream *events_in;
} Remap;

/* An HMP command through QMP; its output. */
static char *
hmp(Remap *r, const char *line)
{
  g_autoptr(JsonObject) args = json_object_new();
  g_autoptr(JsonNode) ret = NULL;

  json_object_set_string_member(args, "command-line", line);
  ret = hmmv_test_qmp_ok(r->qmp, "human-monitor-command", args);
  ck_assert(JSON_NODE_HOLDS_VALUE(ret));
  return g_strdup(json_node_get_string(ret));
}

/* A port write's output: nothing, or QEMU's report of the layout change it caused, never
 * HMP refusing the command. */
static void
hmp_ok(const char *out)
{
  ck_assert_msg(strstr(out, "Try \"help") == NULL, "HMP: %s", out);
}

static void
boot(Remap *r, const char *const *extra)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *ready = NULL;
  g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
  g_autofree char *sock = NULL;

  memset(r, 0, sizeof(*r));
  r->fd = -1;
  r->events_dir = g_dir_make_tmp("hmmv-remap-XXXXXX", &error);
  ck_assert_msg(r->events_dir != NULL, "%s", error ? error->message : "");
  sock = g_build_filename(r->events_dir, "events.sock", NULL);
  for (guint i = 0; extra != NULL && extra[i] != NULL; i++)
    g_ptr_array_add(args, g_strdup(extra[i]));
  g_ptr_array_add(args, g_strdup("-qmp"));
  g_ptr_array_add(args, g_strdup_printf("unix:%s,server=on,wait=off", sock));
  g_ptr_array_add(args, NULL);
  r->proc = hmmv_qemu_proc_start(qemu_path, guest_path, "tcg", RAM_MIB,
                                 "phases=1 pages=10 wait=1",
                                 (const char *const *)args->pdata, &error);
  ck_assert_msg(r->proc != NULL, "%s", error ? error->message : "");
  ready = hmmv_qemu_proc_expect(r->proc, "HMMV-GUEST-READY", SERIAL_TIMEOUT_MS);
  ck_assert_msg(ready != NULL, "the guest did not come up");
  r->qmp = hmmv_qemu_proc_qmp(r->proc, &error);
  ck_assert_msg(r->qmp != NULL, "%s", error ? error->message : "");
  ck_assert_msg(hmmv_harness_events_connect(sock, 30, &r->events, &r->events_in, &error),
                "%s", error->message);
}

/* The data of the next HMMV_LAYOUT_CHANGED event on the events monitor (other events are
 * skipped); a new reference. */
static JsonObject *
next_layout_event(Remap *r)
{
  for (;;) {
    g_autoptr(GError) error = NULL;
    g_autofree char *line = g_data_input_stream_read_line(r->events_in, NULL, NULL, &error);
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *msg;

    ck_assert_msg(line != NULL, "no HMMV_LAYOUT_CHANGED event: %s",
                  error ? error->message : "end of stream");
    ck_assert_msg(json_parser_load_from_data(parser, line, -1, &error), "%s", error->message);
    msg = json_node_get_object(json_parser_get_root(parser));
    if (g_strcmp0(json_object_get_string_member_with_default(msg, "event", ""),
                  "HMMV_LAYOUT_CHANGED") == 0)
      return json_object_ref(json_object_get_object_member(msg, "data"));
  }
}

static void
shutdown_guest(Remap *r)
{
  if (r->map != NULL && r->map != MAP_FAILED)
    munmap(r->map, r->size);
  if (r->fd >= 0)
    close(r->fd);
  g_clear_object(&r->events_in);
  g_clear_object(&r->events);
  g_clear_pointer(&r->qmp, hmmv_qmp_free);
  g_clear_pointer(&r->proc, hmmv_qemu_proc_free);
  if (r->events_dir != NULL) {
    g_autofree char *sock = g_build_filename(r->events_dir, "events.sock", NULL);

    g_unlink(sock);
    g_rmdir(r->events_dir);
    g_clear_pointer(&r->events_dir, g_free);
  }
}

static void
start(Remap *r)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg(hmmv_harness_start_export(r->qmp, "hmmv-test-remap", &r->fd, &r->map,
                                          &r->size, &error), "%s", error->message);
}

static const struct hmmv_shm_header *
header(Remap *r)
{
  return (const struct hmmv_shm_header *)r->map;
}

static guint64
header_layout_generation(Remap *r)
{
  return __atomic_load_n(&header(r)->layout_generation, __ATOMIC_ACQUIRE);
}

static gboolean
header_stale(Remap *r)
{
  return (__atomic_load_n(&header(r)->flags, __ATOMIC_ACQUIRE) & HMMV_SHM_F_LAYOUT_STALE) != 0;
}

static const struct hmmv_shm_block *
desc(Remap *r, guint index)
{
  ck_assert_uint_lt(index, header(r)->nr_blocks);
  return (const struct hmmv_shm_block *)(r->map + HMMV_SHM_HEADER_SIZE) + index;
}

/* query-hmmv-ramblocks' entry of memory backend memdev, or of the block named name when
 * memdev is NULL (a new reference). */
static JsonObject *
block_of(Remap *r, const char *memdev, const char *name)
{
  g_autoptr(JsonNode) ret = hmmv_test_qmp_ok(r->qmp, "query-hmmv-ramblocks", NULL);
  JsonArray *blocks = json_node_get_array(ret);

  for (guint i = 0; i < json_array_get_length(blocks); i++) {
    JsonObject *b = json_array_get_object_element(blocks, i);

    if (memdev != NULL &&
        g_strcmp0(json_object_get_string_member_with_default(b, "memdev", ""), memdev) == 0)
      return json_object_ref(b);
    if (memdev == NULL && g_strcmp0(json_object_get_string_member(b, "name"), name) == 0)
      return json_object_ref(b);
  }
  ck_abort_msg("query-hmmv-ramblocks lists no block %s", memdev ? memdev : name);
  return NULL;
}

/* The block's descriptor (it must be tracked). */
static const struct hmmv_shm_block *
desc_of(Remap *r, JsonObject *block)
{
  ck_assert_msg(json_object_get_boolean_member(block, "tracked"), "%s is not exported",
                json_object_get_string_member(block, "name"));
  return desc(r, json_object_get_int_member(block, "index"));
}

/* The block's layout generation, from QMP and from its descriptor, which must agree. */
static guint32
block_generation(Remap *r, JsonObject *block)
{
  const struct hmmv_shm_block *d = desc_of(r, block);
  guint32 in_region = __atomic_load_n(&d->layout_generation, __ATOMIC_ACQUIRE);

  ck_assert_msg(json_object_has_member(block, "layout-generation"),
                "query-hmmv-ramblocks has no layout-generation for %s",
                json_object_get_string_member(block, "name"));
  ck_assert_uint_eq(json_object_get_int_member(block, "layout-generation"), in_region);
  return in_region;
}

/* Does the block have a guest-physical range covering gpa? */
static gboolean
maps_gpa(JsonObject *block, guint64 gpa)
{
  JsonArray *ranges = json_object_get_array_member(block, "ranges");

  for (guint i = 0; i < json_array_get_length(ranges); i++) {
    JsonObject *range = json_array_get_object_element(ranges, i);
    guint64 start = json_object_get_int_member(range, "gpa");

    if (gpa >= start && gpa < start + json_object_get_int_member(range, "size"))
      return TRUE;
  }
  return FALSE;
}

static void
device_add(Remap *r, const char *driver, const char *id, const char *memdev)
{
  g_autoptr(JsonObject) dev = json_object_new();
  g_autoptr(JsonNode) ret = NULL;

  json_object_set_string_member(dev, "driver", driver);
  json_object_set_string_member(dev, "id", id);
  if (memdev != NULL)
    json_object_set_string_member(dev, "memdev", memdev);
  ret = hmmv_test_qmp_ok(r->qmp, "device_add", dev);
}

static void pci_config_write8(Remap *r, guint reg, guint value);

static const char *const dimm_slots_m1[] = {
  "-m", "128M,slots=2,maxmem=1G",
  "-object", "memory-backend-ram,id=m1,size=128M",
  NULL,
};

START_TEST(test_dimm_existing_memdev)
{
  Remap r;
  g_autoptr(JsonObject) before = NULL, after = NULL, pcram = NULL;
  guint64 header_gen;

  boot(&r, dimm_slots_m1);
  start(&r);
  before = block_of(&r, "m1", NULL);
  ck_assert_uint_eq(block_generation(&r, before), 0);
  ck_assert(!maps_gpa(before, FOUR_GIB));
  header_gen = header_layout_generation(&r);

  device_add(&r, "pc-dimm", "d1", "m1");
  {
    g_autoptr(JsonObject) event = next_layout_event(&r);

    ck_assert(!json_object_get_boolean_member(event, "stale"));
    ck_assert_uint_eq(json_object_get_int_member(event, "block-layout-generation"), 1);
    ck_assert_uint_eq(json_object_get_int_member(event, "layout-generation"),
                      header_layout_generation(&r));
  }
  after = block_of(&r, "m1", NULL);
  pcram = block_of(&r, NULL, "pc.ram");
  ck_assert_msg(maps_gpa(after, FOUR_GIB), "m1 is not mapped at 4 GiB after the plug");
  ck_assert_uint_eq(block_generation(&r, after), 1);
  ck_assert(desc_of(&r, after)->flags & HMMV_SHM_BLOCK_F_REMAPPED);
  ck_assert_uint_gt(header_layout_generation(&r), header_gen);
  ck_assert_msg(!header_stale(&r), "a DIMM on an exported backend made the region stale");
  ck_assert_uint_eq(block_generation(&r, pcram), 0);
  ck_assert(!(desc_of(&r, pcram)->flags & HMMV_SHM_BLOCK_F_REMAPPED));
  printf("# pc-dimm on existing m1: m1's block generation 0 -> 1, header %" G_GUINT64_FORMAT
         " -> %" G_GUINT64_FORMAT ", not stale\n", header_gen, header_layout_generation(&r));
  shutdown_guest(&r);
}
END_TEST

START_TEST(test_nic_rom_not_stale)
{
  Remap r;
  g_autoptr(JsonObject) pcram = NULL;
  g_autoptr(JsonObject) rom = NULL;
  g_autoptr(JsonNode) info = NULL;
  guint64 header_gen;

  boot(&r, NULL);
  start(&r);
  header_gen = header_layout_generation(&r);
  device_add(&r, "virtio-net-pci", "nic1", NULL);
  /* The card's option ROM is a new RAM block, which QEMU lists: the case tests something. */
  {
    g_autoptr(JsonNode) ret = hmmv_test_qmp_ok(r.qmp, "query-hmmv-ramblocks", NULL);
    JsonArray *blocks = json_node_get_array(ret);

    for (guint i = 0; i < json_array_get_length(blocks); i++) {
      JsonObject *b = json_array_get_object_element(blocks, i);

      if (g_str_has_suffix(json_object_get_string_member(b, "name"), "virtio-net-pci.rom"))
        rom = json_object_ref(b);
    }
  }
  ck_assert_msg(rom != NULL, "no option ROM block after the hot-plug");
  ck_assert(!json_object_get_boolean_member(rom, "tracked"));
  pcram = block_of(&r, NULL, "pc.ram");
  ck_assert_uint_eq(block_generation(&r, pcram), 0);
  ck_assert_uint_eq(desc_of(&r, pcram)->flags & (HMMV_SHM_BLOCK_F_REMAPPED |
                                                 HMMV_SHM_BLOCK_F_GONE |
                                                 HMMV_SHM_BLOCK_F_RESIZED), 0);
  ck_assert_uint_eq(header_layout_generation(&r), header_gen);
  ck_assert(!header_stale(&r));
  info = hmmv_test_qmp_ok(r.qmp, "query-hmmv", NULL);
  ck_assert(!json_object_get_boolean_member(json_node_get_object(info), "layout-stale"));
  /* No event for the NIC: the first one after it is the next real change's (PAM1 cleared). */
  pci_config_write8(&r, I440FX_PAM1, 0);
  {
    g_autoptr(JsonObject) event = next_layout_event(&r);

    ck_assert_str_eq(json_object_get_string_member(event, "block"), "pc.ram");
    ck_assert(!json_object_get_boolean_member(event, "stale"));
  }
  printf("# virtio-net hot-plug (%s): pc.ram generation 0, header %" G_GUINT64_FORMAT
         " unchanged, not stale\n", json_object_get_string_member(rom, "name"), header_gen);
  shutdown_guest(&r);
}
END_TEST

static const char *const dimm_plugged[] = {
  "-m", "128M,slots=2,maxmem=1G",
  "-object", "memory-backend-ram,id=m1,size=128M",
  "-device", "pc-dimm,id=d1,memdev=m1",
  NULL,
};

START_TEST(test_dimm_unplug)
{
  Remap r;
  g_autoptr(JsonObject) before = NULL, after = NULL, pcram = NULL;
  g_autoptr(JsonObject) del = json_object_new();
  g_autoptr(JsonNode) ret = NULL;
  g_autofree char *o1 = NULL, *o2 = NULL;
  guint64 header_gen;

  boot(&r, dimm_plugged);
  start(&r);
  before = block_of(&r, "m1", NULL);
  ck_assert_msg(maps_gpa(before, FOUR_GIB), "the cold-plugged DIMM is not at 4 GiB");
  ck_assert_uint_eq(block_generation(&r, before), 0);
  header_gen = header_layout_generation(&r);

  json_object_set_string_member(del, "id", "d1");
  ret = hmmv_test_qmp_ok(r.qmp, "device_del", del);
  /* The guest's side of ACPI memory hot-unplug (ACPI_MEMORY_HOTPLUG_BASE 0x0a00): select the
   * slot, then eject it. */
  o1 = hmp(&r, "o /w 0x0a00 0");
  o2 = hmp(&r, "o /b 0x0a14 8");
  hmp_ok(o1);
  hmp_ok(o2);
  after = block_of(&r, "m1", NULL);
  ck_assert_msg(!maps_gpa(after, FOUR_GIB), "m1 is still mapped after the unplug");
  ck_assert_uint_eq(block_generation(&r, after), 1);
  ck_assert(desc_of(&r, after)->flags & HMMV_SHM_BLOCK_F_REMAPPED);
  ck_assert_uint_gt(header_layout_generation(&r), header_gen);
  ck_assert(!header_stale(&r));
  pcram = block_of(&r, NULL, "pc.ram");
  ck_assert_uint_eq(block_generation(&r, pcram), 0);
  printf("# DIMM unplug: m1's block generation 0 -> 1, unmapped; header %" G_GUINT64_FORMAT
         " -> %" G_GUINT64_FORMAT "\n", header_gen, header_layout_generation(&r));
  shutdown_guest(&r);
}
END_TEST

START_TEST(test_new_memdev_stale)
{
  Remap r;
  g_autoptr(JsonObject) obj = json_object_new();
  g_autoptr(JsonNode) ret = NULL;
  g_autoptr(JsonNode) info = NULL;
  g_autoptr(JsonObject) pcram = NULL;

  boot(&r, dimm_slots_m1);
  start(&r);
  json_object_set_string_member(obj, "qom-type", "memory-backend-ram");
  json_object_set_string_member(obj, "id", "m2");
  json_object_set_int_member(obj, "size", 64 << 20);
  ret = hmmv_test_qmp_ok(r.qmp, "object-add", obj);
  /* A backend no device uses is not in the guest's map: nothing yet. */
  ck_assert(!header_stale(&r));
  device_add(&r, "pc-dimm", "d2", "m2");
  ck_assert_msg(header_stale(&r), "guest RAM with no descriptor was mapped, region not stale");
  {
    g_autoptr(JsonObject) event = next_layout_event(&r);

    ck_assert(json_object_get_boolean_member(event, "stale"));
    ck_assert(!json_object_has_member(event, "block-layout-generation"));
  }
  info = hmmv_test_qmp_ok(r.qmp, "query-hmmv", NULL);
  ck_assert(json_object_get_boolean_member(json_node_get_object(info), "layout-stale"));
  pcram = block_of(&r, NULL, "pc.ram");
  ck_assert_uint_eq(block_generation(&r, pcram), 0);
  shutdown_guest(&r);
}
END_TEST

/* Byte reg of the host bridge's (00:00.0) PCI config space through ports 0xcf8/0xcfc. */
static guint
pci_config_read8(Remap *r, guint reg)
{
  g_autofree char *sel = g_strdup_printf("o /w 0xcf8 0x%x", 0x80000000u | (reg & ~3u));
  g_autofree char *o = hmp(r, sel);
  g_autofree char *cmd = g_strdup_printf("i /b 0x%x", 0xcfc + (reg & 3u));
  g_autofree char *out = NULL;
  const char *eq;

  hmp_ok(o);
  out = hmp(r, cmd);
  eq = strrchr(out, '=');
  ck_assert_msg(eq != NULL, "HMP i: %s", out);
  return (guint)g_ascii_strtoull(eq + 1, NULL, 16);
}

static void
pci_config_write8(Remap *r, guint reg, guint value)
{
  g_autofree char *sel = g_strdup_printf("o /w 0xcf8 0x%x", 0x80000000u | (reg & ~3u));
  g_autofree char *o1 = hmp(r, sel);
  g_autofree char *cmd = g_strdup_printf("o /b 0x%x 0x%x", 0xcfc + (reg & 3u), value);
  g_autofree char *o2 = hmp(r, cmd);

  hmp_ok(o1);
  hmp_ok(o2);
}


START_TEST(test_pam)
{
  Remap r;
  g_autoptr(JsonObject) before = NULL, cleared = NULL, restored = NULL;
  guint pam;

  boot(&r, NULL);
  start(&r);
  pam = pci_config_read8(&r, I440FX_PAM1);
  before = block_of(&r, NULL, "pc.ram");
  ck_assert_uint_eq(block_generation(&r, before), 0);
  ck_assert_msg(pam != 0 && maps_gpa(before, PAM_WINDOW),
                "PAM1 is 0x%x: 0xc0000 is not RAM after the BIOS, the case tests nothing", pam);

  pci_config_write8(&r, I440FX_PAM1, 0);
  cleared = block_of(&r, NULL, "pc.ram");
  ck_assert_msg(!maps_gpa(cleared, PAM_WINDOW), "pc.ram still at 0xc0000 with PAM1 0");
  ck_assert_uint_eq(block_generation(&r, cleared), 1);
  ck_assert(desc_of(&r, cleared)->flags & HMMV_SHM_BLOCK_F_REMAPPED);
  ck_assert(!header_stale(&r));

  pci_config_write8(&r, I440FX_PAM1, pam);
  ck_assert_uint_eq(pci_config_read8(&r, I440FX_PAM1), pam);
  restored = block_of(&r, NULL, "pc.ram");
  ck_assert(maps_gpa(restored, PAM_WINDOW));
  ck_assert_uint_eq(block_generation(&r, restored), 2);
  ck_assert(!header_stale(&r));
  printf("# PAM1 0x%x -> 0 -> 0x%x: pc.ram's block generation 0 -> 1 -> 2, not stale\n", pam,
         pam);

  /* hmmv-stop (the listener goes away) is no layout change: nothing moves in the region,
   * which the test still maps, nor in query-hmmv's count. */
  {
    guint64 header_gen = header_layout_generation(&r);
    const struct hmmv_shm_block *d = desc_of(&r, restored);
    g_autoptr(JsonNode) info_before = hmmv_test_qmp_ok(r.qmp, "query-hmmv", NULL);
    g_autoptr(JsonNode) stopped = hmmv_test_qmp_ok(r.qmp, "hmmv-stop", NULL);
    g_autoptr(JsonNode) info_after = hmmv_test_qmp_ok(r.qmp, "query-hmmv", NULL);

    ck_assert_uint_eq(header_layout_generation(&r), header_gen);
    ck_assert_uint_eq(__atomic_load_n(&d->layout_generation, __ATOMIC_ACQUIRE), 2);
    ck_assert_uint_eq(json_object_get_int_member(json_node_get_object(info_after),
                                                 "layout-generation"),
                      json_object_get_int_member(json_node_get_object(info_before),
                                                 "layout-generation"));
  }
  shutdown_guest(&r);
}
END_TEST

/* The guest's default write window: pfn 0x1000 (16 MiB), 2048 pages. */
#define BASE_PFN 0x1000u
#define SPAN 2048u

/* The pfns in the window marked written in acc. */
static GHashTable *
written_pfns(HmmvVm *vm, HmmvAccess *acc)
{
  GHashTable *set = g_hash_table_new(g_direct_hash, g_direct_equal);

  for (guint64 page = 0; page < acc->nr_pages; page++) {
    guint64 pfn;

    if (!hmmv_bitmap_test(acc->writes, page))
      continue;
    pfn = hmmv_vm_page_to_gpa(vm, page) >> HMMV_PAGE_SHIFT;
    if (pfn >= BASE_PFN && pfn < BASE_PFN + SPAN)
      g_hash_table_add(set, GSIZE_TO_POINTER(pfn));
  }
  return set;
}

/* Run phase k, harvest: the window's harvested pfns are exactly what the guest wrote. */
static void
phase_exact(Remap *r, HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, guint k)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) wrote = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autoptr(GHashTable) got = NULL;
  GHashTableIter iter;
  gpointer key;

  ck_assert_msg(hmmv_qemu_proc_run_phase(r->proc, k, wrote, SERIAL_TIMEOUT_MS, &error), "%s",
                error->message);
  hmmv_access_clear(acc);
  ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s",
                error ? error->message : "");
  got = written_pfns(vm, acc);
  ck_assert_uint_gt(g_hash_table_size(wrote), 0);
  ck_assert_uint_eq(g_hash_table_size(got), g_hash_table_size(wrote));
  g_hash_table_iter_init(&iter, wrote);
  while (g_hash_table_iter_next(&iter, &key, NULL))
    ck_assert_msg(g_hash_table_contains(got, key), "pfn 0x%zx written, not harvested",
                  GPOINTER_TO_SIZE(key));
}

START_TEST(test_tracker)
{
  Remap r;
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvVm) vm = NULL;
  g_autoptr(HmmvTracker) tracker = NULL;
  HmmvAccess *acc;
  HmmvQemuDirtyOptions options = { .interval_ms = 0 };
  HmmvQemuDirtyStats stats;
  HmmvQmp *tracker_qmp;
  guint pam;

  memset(&r, 0, sizeof(r));
  r.fd = -1;
  r.proc = hmmv_qemu_proc_start(qemu_path, guest_path, "tcg", RAM_MIB,
                                "phases=3 pages=100 pattern=random span=2048 seed=5 wait=1",
                                dimm_slots_m1, &error);
  ck_assert_msg(r.proc != NULL, "%s", error ? error->message : "");
  {
    g_autofree char *ready = hmmv_qemu_proc_expect(r.proc, "HMMV-GUEST-READY",
                                                   SERIAL_TIMEOUT_MS);

    ck_assert_msg(ready != NULL, "the guest did not come up");
  }
  /* QEMU's QMP socket takes one client: the tracker owns it, the test borrows it. */
  tracker_qmp = hmmv_qemu_proc_qmp(r.proc, &error);
  ck_assert_msg(tracker_qmp != NULL, "%s", error ? error->message : "");
  vm = hmmv_qemu_vm_new(tracker_qmp, "guest", &error);
  ck_assert_msg(vm != NULL, "%s", error ? error->message : "");
  tracker = hmmv_qemu_dirty_tracker_new(tracker_qmp, &options, &error);
  ck_assert_msg(tracker != NULL, "%s", error ? error->message : "");
  r.qmp = hmmv_qemu_dirty_tracker_get_qmp(tracker);
  ck_assert_msg(hmmv_tracker_start(tracker, vm, &error), "%s", error ? error->message : "");
  acc = hmmv_access_new(hmmv_vm_get_nr_pages(vm), &error);
  ck_assert(acc != NULL);
  ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));

  device_add(&r, "virtio-net-pci", "nic1", NULL);
  phase_exact(&r, tracker, vm, acc, 0);
  ck_assert(hmmv_qemu_dirty_tracker_get_stats(tracker, &stats));
  ck_assert_uint_eq(stats.blocks_rechecked, 0);

  pam = pci_config_read8(&r, I440FX_PAM1);
  pci_config_write8(&r, I440FX_PAM1, 0);
  pci_config_write8(&r, I440FX_PAM1, pam);
  phase_exact(&r, tracker, vm, acc, 1);
  ck_assert(hmmv_qemu_dirty_tracker_get_stats(tracker, &stats));
  ck_assert_uint_eq(stats.blocks_rechecked, 1);

  device_add(&r, "pc-dimm", "d1", "m1");
  hmmv_access_clear(acc);
  ck_assert(!hmmv_tracker_harvest(tracker, vm, acc, &error));
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_LAYOUT_CHANGED), "%s",
                error->message);
  ck_assert_msg(strstr(error->message, "moved in guest-physical memory") != NULL, "%s",
                error->message);
  printf("# tracker: NIC hot-plug harvested on, PAM clear+restore re-read pc.ram alone "
         "(blocks rechecked %" G_GUINT64_FORMAT "), DIMM on m1: %s\n", stats.blocks_rechecked,
         error->message);
  hmmv_access_free(acc);
  r.qmp = NULL;   /* the tracker's */
  g_clear_pointer(&tracker, hmmv_tracker_free);
  shutdown_guest(&r);
}
END_TEST

static Suite *
remap_suite(void)
{
  Suite *s = suite_create("qemu-remap");
  TCase *tc = tcase_create("remap");

  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_dimm_existing_memdev);
  tcase_add_test(tc, test_nic_rom_not_stale);
  tcase_add_test(tc, test_dimm_unplug);
  tcase_add_test(tc, test_new_memdev_stale);
  tcase_add_test(tc, test_pam);
  tcase_add_test(tc, test_tracker);
  suite_add_tcase(s, tc);
  return s;
}

static const char *const patches[] = {
  "0013-hmmv-follow-the-guest-physical-map-staleness-per-blo.patch", /* 10.0, 13 patches */
  "0014-hmmv-follow-the-guest-physical-map-staleness-per-blo.patch", /* 10.0, export core split */
};

int
main(void)
{
  g_autofree char *why = NULL;

  if (!hmmv_harness_prepare(NULL, &qemu_path, &guest_path, &why))
    return hmmv_test_skip_all(why);
  if (!hmmv_harness_built_with(qemu_path, patches, G_N_ELEMENTS(patches),
                               "per-block layout from the guest-physical map (10.0: 0014)",
                               &why))
    return hmmv_test_skip_all(why);
  return hmmv_test_run(remap_suite());
}
