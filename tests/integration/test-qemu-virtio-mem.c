/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The export follows virtio-mem's RamDiscardManager (issue 9, "Exactness and coexistence";
 * 10.0's 0016), under TCG, read over QMP (query-hmmv-ramblocks, qom-get), from the region's
 * header, descriptors and bitmaps, and from HMMV_LAYOUT_CHANGED on a second QMP monitor:
 *
 *   all-discarded  the test guest with a 1 GiB virtio-mem device at requested-size 0 (no
 *                  driver: nothing is ever plugged): the device's block is exported,
 *                  query-hmmv-ramblocks gives its granularity (block-size, 2 MiB) and no
 *                  populated part (pc.ram has neither), and libhmmv's layout has none of
 *                  it; the guest's writes are published in pc.ram, none in the device's
 *   hot-add        a virtio-mem-pci device hot-plugged on a memory backend the export already
 *                  has: that block's mapping changes (REMAPPED, one event), QEMU reports its
 *                  granularity and no populated part, and hmmv-stop (which unregisters the
 *                  RamDiscardListener) changes no generation
 *   plug-unplug    Debian's kernel with its virtio_mem driver (virtio-mem-guest/, hot-plugged
 *                  memory onlined movable): requested-size 256 MiB, and once the guest
 *                  plugged it (qom-get size), the populated parts add up to 256 MiB, the
 *                  block's descriptor and the header count the plugs (pc.ram's descriptor
 *                  does not move, nothing is stale), an event names the block for each, and
 *                  libhmmv's layout holds those 256 MiB of it; the guest writes 64 MiB into a
 *                  tmpfs file (movable allocations come from the plugged memory first): the
 *                  device's bits published are all inside populated parts, and there are
 *                  some (harvested). The guest writes the file once more (not published
 *                  yet) and removes it; requested-size 0: once the guest unplugged
 *                  everything, no part is populated, the generations moved again, an
 *                  event for each change, libhmmv's layout has none of the device, and the
 *                  next publication reports no page of it (the unpublished writes in the
 *                  unplugged parts were dropped).
 *   plug-tracker   libhmmv's qemu-dirty tracker on that guest, as hmmvd runs it: a plug is a
 *                  layout change it reports (LAYOUT_CHANGED, "had memory plugged or
 *                  unplugged"), and the layout read after it holds the 256 MiB plugged.
 *
 * Skips (77) on a QEMU whose BUILD-INFO lists no 0016, without virtio-mem-pci, or when the
 * virtio-mem guest cannot be built (virtio-mem-guest/build-image says why).
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
#include <unistd.h>

/* Liveness bounds (TCG boots a distribution kernel slowly on a loaded host), not speed. */
#define SERIAL_TIMEOUT_MS 60000
#define BOOT_TIMEOUT_MS 600000
#define PLUG_TIMEOUT_S 600
#define MIB (G_GUINT64_CONSTANT(1) << 20)
#define GRANULE (2 * MIB)
#define PLUG_SIZE (256 * MIB)
#define VMEM_DEVICE "/machine/peripheral/vm0"

static char *qemu_path;
static char *guest_path;
static char *vmem_images;   /* vmlinuz + initrd.gz of the virtio-mem guest */

typedef struct {
  HmmvQemuProc *proc;
  HmmvQmp *qmp;
  int fd;
  guint8 *map;
  gsize size;
  char *events_dir;
  GSocketConnection *events;
  GDataInputStream *events_in;
} Vmem;

/* Boot, connect both monitors, and (export) start the export as a consumer would. */
static void
vmem_boot(Vmem *v, const char *kernel, guint ram_mib, const char *append,
          const char *const *extra, const char *ready, guint ready_ms, gboolean export)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
  g_autofree char *sock = NULL;

  memset(v, 0, sizeof(*v));
  v->fd = -1;
  v->events_dir = g_dir_make_tmp("hmmv-vmem-XXXXXX", &error);
  ck_assert_msg(v->events_dir != NULL, "%s", error ? error->message : "");
  sock = g_build_filename(v->events_dir, "events.sock", NULL);
  for (guint i = 0; extra[i] != NULL; i++)
    g_ptr_array_add(args, g_strdup(extra[i]));
  g_ptr_array_add(args, g_strdup("-qmp"));
  g_ptr_array_add(args, g_strdup_printf("unix:%s,server=on,wait=off", sock));
  g_ptr_array_add(args, NULL);
  v->proc = hmmv_qemu_proc_start(qemu_path, kernel, "tcg", ram_mib, append,
                                 (const char *const *)args->pdata, &error);
  ck_assert_msg(v->proc != NULL, "%s", error ? error->message : "");
  line = hmmv_qemu_proc_expect(v->proc, ready, ready_ms);
  ck_assert_msg(line != NULL, "the guest did not say %s", ready);
  v->qmp = hmmv_qemu_proc_qmp(v->proc, &error);
  ck_assert_msg(v->qmp != NULL, "%s", error ? error->message : "");
  ck_assert_msg(hmmv_harness_events_connect(sock, 60, &v->events, &v->events_in, &error),
                "%s", error->message);
  if (export)
    ck_assert_msg(hmmv_harness_start_export(v->qmp, "hmmv-test-vmem", &v->fd, &v->map,
                                            &v->size, &error), "%s", error->message);
}

static void
vmem_shutdown(Vmem *v)
{
  if (v->map != NULL && v->map != MAP_FAILED)
    munmap(v->map, v->size);
  if (v->fd >= 0)
    close(v->fd);
  g_clear_object(&v->events_in);
  g_clear_object(&v->events);
  g_clear_pointer(&v->qmp, hmmv_qmp_free);
  g_clear_pointer(&v->proc, hmmv_qemu_proc_free);
  if (v->events_dir != NULL) {
    g_autofree char *sock = g_build_filename(v->events_dir, "events.sock", NULL);

    g_unlink(sock);
    g_rmdir(v->events_dir);
    g_clear_pointer(&v->events_dir, g_free);
  }
}

static const struct hmmv_shm_header *
header(Vmem *v)
{
  return (const struct hmmv_shm_header *)v->map;
}

static guint64
header_layout_generation(Vmem *v)
{
  return __atomic_load_n(&header(v)->layout_generation, __ATOMIC_ACQUIRE);
}

static gboolean
header_stale(Vmem *v)
{
  return (__atomic_load_n(&header(v)->flags, __ATOMIC_ACQUIRE) & HMMV_SHM_F_LAYOUT_STALE) != 0;
}

/* query-hmmv-ramblocks' entry of memory backend memdev, or of the block named name when
 * memdev is NULL (a new reference). */
static JsonObject *
block_of(Vmem *v, const char *memdev, const char *name)
{
  g_autoptr(JsonNode) ret = hmmv_test_qmp_ok(v->qmp, "query-hmmv-ramblocks", NULL);
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

static const struct hmmv_shm_block *
desc_of(Vmem *v, JsonObject *block)
{
  guint64 index;

  ck_assert_msg(json_object_get_boolean_member(block, "tracked"), "%s is not exported",
                json_object_get_string_member(block, "name"));
  index = json_object_get_int_member(block, "index");
  ck_assert_uint_lt(index, header(v)->nr_blocks);
  return (const struct hmmv_shm_block *)(v->map + HMMV_SHM_HEADER_SIZE) + index;
}

/* The block's layout generation, from QMP and from its descriptor, which must agree. */
static guint32
block_generation(Vmem *v, JsonObject *block)
{
  guint32 in_region = __atomic_load_n(&desc_of(v, block)->layout_generation, __ATOMIC_ACQUIRE);

  ck_assert_uint_eq(json_object_get_int_member(block, "layout-generation"), in_region);
  return in_region;
}

/* The populated parts of a block QEMU reports them for: bytes in all, every part checked
 * to be whole granules inside the block, in order. */
static guint64
populated_bytes(JsonObject *block, guint64 granule)
{
  JsonArray *parts;
  guint64 total = 0, next = 0;

  ck_assert_msg(json_object_has_member(block, "discard-granularity"),
                "no discard-granularity for %s", json_object_get_string_member(block, "name"));
  ck_assert_uint_eq(json_object_get_int_member(block, "discard-granularity"), granule);
  ck_assert_msg(json_object_has_member(block, "populated"), "no populated parts listed");
  parts = json_object_get_array_member(block, "populated");
  for (guint i = 0; i < json_array_get_length(parts); i++) {
    JsonObject *part = json_array_get_object_element(parts, i);
    guint64 offset = json_object_get_int_member(part, "offset");
    guint64 size = json_object_get_int_member(part, "size");

    ck_assert_uint_eq(offset % granule, 0);
    ck_assert_uint_eq(size % granule, 0);
    ck_assert_uint_gt(size, 0);
    ck_assert_uint_ge(offset, next);
    next = offset + size;
    ck_assert_uint_le(next, json_object_get_int_member(block, "used-length"));
    total += size;
  }
  return total;
}

static gboolean
in_populated(JsonObject *block, guint64 offset)
{
  JsonArray *parts = json_object_get_array_member(block, "populated");

  for (guint i = 0; i < json_array_get_length(parts); i++) {
    JsonObject *part = json_array_get_object_element(parts, i);
    guint64 start = json_object_get_int_member(part, "offset");

    if (offset >= start && offset < start + json_object_get_int_member(part, "size"))
      return TRUE;
  }
  return FALSE;
}

/* Bits set in the block's bitmap now (read, not harvested); of a block QEMU lists populated
 * parts for, every one must lie in one of them (query-hmmv-ramblocks' view, block). */
static guint64
bits_in(Vmem *v, JsonObject *block)
{
  const struct hmmv_shm_block *d = desc_of(v, block);
  const guint64 *words;
  guint64 n = 0;

  ck_assert_uint_le(d->bitmap_offset + d->bitmap_words * 8, v->size);
  words = (const guint64 *)(v->map + d->bitmap_offset);
  for (guint64 w = 0; w < d->bitmap_words; w++) {
    guint64 bits = GUINT64_FROM_LE(__atomic_load_n(&words[w], __ATOMIC_ACQUIRE));

    for (; bits != 0; bits &= bits - 1) {
      guint64 page = w * 64 + (guint64)__builtin_ctzll(bits);

      ck_assert_msg(!json_object_has_member(block, "populated") ||
                    in_populated(block, page << HMMV_PAGE_SHIFT),
                    "%s: page 0x%" G_GINT64_MODIFIER "x published, not populated",
                    json_object_get_string_member(block, "name"), page);
      n++;
    }
  }
  return n;
}

/* Harvest the block's bits as a consumer does (exchange every word with 0); how many. */
static guint64
harvest(Vmem *v, JsonObject *block)
{
  const struct hmmv_shm_block *d = desc_of(v, block);
  guint64 *words = (guint64 *)(v->map + d->bitmap_offset);
  guint64 n = 0;

  for (guint64 w = 0; w < d->bitmap_words; w++)
    n += (guint64)__builtin_popcountll(__atomic_exchange_n(&words[w], 0, __ATOMIC_ACQ_REL));
  return n;
}

static void
sync_export(Vmem *v)
{
  g_autoptr(JsonNode) ret = hmmv_test_qmp_ok(v->qmp, "hmmv-sync", NULL);
}

/* The device's size (qom-get): what the guest has plugged. */
static guint64
vmem_size(Vmem *v)
{
  g_autoptr(JsonObject) args = json_object_new();
  g_autoptr(JsonNode) ret = NULL;

  json_object_set_string_member(args, "path", VMEM_DEVICE);
  json_object_set_string_member(args, "property", "size");
  ret = hmmv_test_qmp_ok(v->qmp, "qom-get", args);
  return json_node_get_int(ret);
}

/* Ask for size bytes (qom-set requested-size) and wait until the guest plugged or unplugged
 * to it; returns the seconds it took (reported with the load, never asserted). */
static guint
vmem_resize(Vmem *v, guint64 size)
{
  g_autoptr(JsonObject) args = json_object_new();
  g_autoptr(JsonNode) ret = NULL;
  gint64 start = g_get_monotonic_time();

  json_object_set_string_member(args, "path", VMEM_DEVICE);
  json_object_set_string_member(args, "property", "requested-size");
  json_object_set_int_member(args, "value", (gint64)size);
  ret = hmmv_test_qmp_ok(v->qmp, "qom-set", args);
  for (guint i = 0; i < PLUG_TIMEOUT_S * 2; i++) {
    if (vmem_size(v) == size)
      return (guint)((g_get_monotonic_time() - start) / G_USEC_PER_SEC);
    g_usleep(G_USEC_PER_SEC / 2);
  }
  ck_abort_msg("the guest did not get the device to %" G_GUINT64_FORMAT " MiB in %u s "
               "(it has %" G_GUINT64_FORMAT " MiB)", size / MIB, PLUG_TIMEOUT_S,
               vmem_size(v) / MIB);
  return 0;
}

/* Read HMMV_LAYOUT_CHANGED events until one names block with block-layout-generation want;
 * every one on the way must name that block, not stale. Returns the events read. */
static guint
expect_events(Vmem *v, const char *block, guint32 want)
{
  guint n = 0;

  for (;;) {
    g_autoptr(GError) error = NULL;
    g_autofree char *line = g_data_input_stream_read_line(v->events_in, NULL, NULL, &error);
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *msg, *data;

    ck_assert_msg(line != NULL, "no HMMV_LAYOUT_CHANGED for %s generation %u: %s", block, want,
                  error ? error->message : "end of stream");
    ck_assert_msg(json_parser_load_from_data(parser, line, -1, &error), "%s", error->message);
    msg = json_node_get_object(json_parser_get_root(parser));
    if (g_strcmp0(json_object_get_string_member_with_default(msg, "event", ""),
                  "HMMV_LAYOUT_CHANGED") != 0)
      continue;
    data = json_object_get_object_member(msg, "data");
    n++;
    ck_assert_str_eq(json_object_get_string_member_with_default(data, "block", ""), block);
    ck_assert(!json_object_get_boolean_member(data, "stale"));
    ck_assert(json_object_has_member(data, "block-layout-generation"));
    if (json_object_get_int_member(data, "block-layout-generation") == want)
      return n;
    ck_assert_uint_lt(json_object_get_int_member(data, "block-layout-generation"), want);
  }
}

/* Bytes of the block that libhmmv's layout (what hmmvd ranks and moves) holds. */
static guint64
layout_bytes(Vmem *v, const char *block)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) ranges = hmmv_qemu_query_layout(v->qmp, FALSE, &error);
  guint64 total = 0;

  ck_assert_msg(ranges != NULL, "%s", error ? error->message : "");
  for (guint i = 0; i < ranges->len; i++) {
    const HmmvQemuRange *range = g_ptr_array_index(ranges, i);

    if (g_strcmp0(range->block, block) == 0)
      total += range->size;
  }
  return total;
}

static const char *const all_discarded_args[] = {
  "-m", "128M,maxmem=1152M",
  "-object", "memory-backend-ram,id=vmem0,size=1G",
  "-device", "virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0,block-size=2M",
  NULL,
};

START_TEST(test_all_discarded)
{
  Vmem v;
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) wrote = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autoptr(JsonObject) dev = NULL;
  g_autoptr(JsonObject) ram = NULL;
  const char *name;

  vmem_boot(&v, guest_path, 128, "phases=1 pages=64 pattern=random span=2048 seed=3 wait=1",
            all_discarded_args, "HMMV-GUEST-READY", SERIAL_TIMEOUT_MS, TRUE);
  dev = block_of(&v, "vmem0", NULL);
  ram = block_of(&v, NULL, "pc.ram");
  name = json_object_get_string_member(dev, "name");
  ck_assert_uint_eq(populated_bytes(dev, GRANULE), 0);
  ck_assert(!json_object_has_member(ram, "populated"));
  ck_assert(!json_object_has_member(ram, "discard-granularity"));
  ck_assert_msg(json_array_get_length(json_object_get_array_member(dev, "ranges")) > 0,
                "the device's memory is not mapped");
  ck_assert_uint_eq(layout_bytes(&v, name), 0);
  ck_assert_uint_gt(layout_bytes(&v, "pc.ram"), 0);

  ck_assert_msg(hmmv_qemu_proc_run_phase(v.proc, 0, wrote, SERIAL_TIMEOUT_MS, &error), "%s",
                error->message);
  sync_export(&v);
  ck_assert_uint_gt(g_hash_table_size(wrote), 0);   /* random pfns may repeat */
  {
    /* pc.ram maps guest-physical 0-128 MiB at the same offsets */
    const struct hmmv_shm_block *d = desc_of(&v, ram);
    const guint64 *words = (const guint64 *)(v.map + d->bitmap_offset);
    GHashTableIter iter;
    gpointer key;

    g_hash_table_iter_init(&iter, wrote);
    while (g_hash_table_iter_next(&iter, &key, NULL)) {
      guint64 pfn = GPOINTER_TO_SIZE(key);

      ck_assert_uint_lt(pfn / 64, d->bitmap_words);
      ck_assert_msg(GUINT64_FROM_LE(words[pfn / 64]) & (G_GUINT64_CONSTANT(1) << (pfn % 64)),
                    "pfn 0x%" G_GINT64_MODIFIER "x written, not published", pfn);
    }
  }
  ck_assert_uint_eq(bits_in(&v, dev), 0);
  ck_assert_uint_eq(block_generation(&v, dev), 0);
  printf("# all-discarded: %s exported, no populated part, none of it in the layout; %u "
         "pages written, %" G_GUINT64_FORMAT " bits in pc.ram, 0 in %s\n", name,
         g_hash_table_size(wrote), bits_in(&v, ram), name);
  vmem_shutdown(&v);
}
END_TEST

START_TEST(test_plug_unplug)
{
  Vmem v;
  g_autoptr(JsonObject) dev = NULL;
  g_autoptr(JsonObject) ram = NULL;
  g_autofree char *kernel = NULL, *initrd = NULL, *name = NULL, *line = NULL;
  g_autoptr(GError) error = NULL;
  guint64 header_before, plugged_bits;
  guint32 plug_generation, unplug_generation;
  guint plug_s, unplug_s, plug_events, unplug_events;
  const char *extra[] = {
    "-m", "256M,maxmem=1280M",
    "-object", "memory-backend-ram,id=vmem0,size=1G",
    "-device", "virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0,block-size=2M",
    "-initrd", NULL,
    NULL,
  };

  kernel = g_build_filename(vmem_images, "vmlinuz", NULL);
  initrd = g_build_filename(vmem_images, "initrd.gz", NULL);
  extra[7] = initrd;
  vmem_boot(&v, kernel, 256, "console=ttyS0 quiet memhp_default_state=online_movable",
            extra, "VMEM-READY", BOOT_TIMEOUT_MS, TRUE);
  dev = block_of(&v, "vmem0", NULL);
  name = g_strdup(json_object_get_string_member(dev, "name"));
  ram = block_of(&v, NULL, "pc.ram");
  ck_assert_uint_eq(populated_bytes(dev, GRANULE), 0);
  ck_assert_uint_eq(block_generation(&v, dev), 0);
  ck_assert_uint_eq(block_generation(&v, ram), 0);
  header_before = header_layout_generation(&v);

  /* plug */
  plug_s = vmem_resize(&v, PLUG_SIZE);
  g_clear_pointer(&dev, json_object_unref);
  dev = block_of(&v, "vmem0", NULL);
  ck_assert_uint_eq(populated_bytes(dev, GRANULE), PLUG_SIZE);
  plug_generation = block_generation(&v, dev);
  ck_assert_uint_gt(plug_generation, 0);
  ck_assert_uint_eq(header_layout_generation(&v), header_before + plug_generation);
  ck_assert(!header_stale(&v));
  g_clear_pointer(&ram, json_object_unref);
  ram = block_of(&v, NULL, "pc.ram");
  ck_assert_uint_eq(block_generation(&v, ram), 0);
  plug_events = expect_events(&v, name, plug_generation);
  ck_assert_uint_eq(plug_events, plug_generation);
  ck_assert_uint_eq(layout_bytes(&v, name), PLUG_SIZE);

  /* the guest writes into what it plugged */
  ck_assert(hmmv_qemu_proc_send(v.proc, "f", &error));
  line = hmmv_qemu_proc_expect(v.proc, "VMEM-FILLED", BOOT_TIMEOUT_MS);
  ck_assert_msg(line != NULL, "the guest did not fill its tmpfs file");
  sync_export(&v);
  plugged_bits = bits_in(&v, dev);
  ck_assert_msg(plugged_bits > 0, "no write published in the plugged memory");
  ck_assert_uint_eq(harvest(&v, dev), plugged_bits);
  /* written again, not published before the unplug */
  g_clear_pointer(&line, g_free);
  ck_assert(hmmv_qemu_proc_send(v.proc, "r", &error));
  line = hmmv_qemu_proc_expect(v.proc, "VMEM-FREED", SERIAL_TIMEOUT_MS);
  ck_assert_msg(line != NULL, "the guest did not remove its tmpfs file");
  g_clear_pointer(&line, g_free);
  ck_assert(hmmv_qemu_proc_send(v.proc, "f", &error));
  line = hmmv_qemu_proc_expect(v.proc, "VMEM-FILLED", BOOT_TIMEOUT_MS);
  ck_assert_msg(line != NULL, "the guest did not fill its tmpfs file again");
  g_clear_pointer(&line, g_free);
  ck_assert(hmmv_qemu_proc_send(v.proc, "r", &error));
  line = hmmv_qemu_proc_expect(v.proc, "VMEM-FREED", SERIAL_TIMEOUT_MS);
  ck_assert_msg(line != NULL, "the guest did not remove its tmpfs file");

  /* unplug */
  unplug_s = vmem_resize(&v, 0);
  g_clear_pointer(&dev, json_object_unref);
  dev = block_of(&v, "vmem0", NULL);
  ck_assert_uint_eq(populated_bytes(dev, GRANULE), 0);
  unplug_generation = block_generation(&v, dev);
  ck_assert_uint_gt(unplug_generation, plug_generation);
  ck_assert_uint_eq(header_layout_generation(&v), header_before + unplug_generation);
  ck_assert(!header_stale(&v));
  unplug_events = expect_events(&v, name, unplug_generation);
  ck_assert_uint_eq(unplug_events, unplug_generation - plug_generation);
  sync_export(&v);
  ck_assert_uint_eq(bits_in(&v, dev), 0);
  ck_assert_uint_eq(layout_bytes(&v, name), 0);
  g_clear_pointer(&ram, json_object_unref);
  ram = block_of(&v, NULL, "pc.ram");
  ck_assert_uint_eq(block_generation(&v, ram), 0);
  {
    g_autofree char *load = NULL;

    if (g_file_get_contents("/proc/loadavg", &load, NULL, NULL))
      g_strstrip(load);
    printf("# plug-unplug: %s plugged %" G_GUINT64_FORMAT " MiB in %u s (%u changes, %u "
           "events), %" G_GUINT64_FORMAT " pages written there published; unplugged in %u s "
           "(%u changes, %u events), none published after it (loadavg %s)\n", name, PLUG_SIZE / MIB,
           plug_s, plug_generation, plug_events, plugged_bits, unplug_s,
           unplug_generation - plug_generation, unplug_events, load ? load : "?");
  }
  vmem_shutdown(&v);
}
END_TEST

/* libhmmv's qemu-dirty tracker, as hmmvd runs it: a plug is a layout change it reports
 * (LAYOUT_CHANGED, the block named), and the layout read after it holds the plugged memory. */
START_TEST(test_plug_tracker)
{
  Vmem v;
  g_autofree char *kernel = NULL, *initrd = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvVm) vm = NULL;
  g_autoptr(HmmvVm) after = NULL;
  g_autoptr(HmmvTracker) tracker = NULL;
  HmmvQemuDirtyOptions options = { .interval_ms = 0 };
  HmmvAccess *acc;
  guint64 pages;
  const char *extra[] = {
    "-m", "256M,maxmem=1280M",
    "-object", "memory-backend-ram,id=vmem0,size=1G",
    "-device", "virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0,block-size=2M",
    "-initrd", NULL,
    NULL,
  };

  kernel = g_build_filename(vmem_images, "vmlinuz", NULL);
  initrd = g_build_filename(vmem_images, "initrd.gz", NULL);
  extra[7] = initrd;
  vmem_boot(&v, kernel, 256, "console=ttyS0 quiet memhp_default_state=online_movable",
            extra, "VMEM-READY", BOOT_TIMEOUT_MS, FALSE);
  vm = hmmv_qemu_vm_new(v.qmp, "guest", &error);
  ck_assert_msg(vm != NULL, "%s", error ? error->message : "");
  pages = hmmv_vm_get_nr_pages(vm);
  /* QEMU's QMP socket takes one client: the tracker owns it, the test borrows it. */
  tracker = hmmv_qemu_dirty_tracker_new(g_steal_pointer(&v.qmp), &options, &error);
  ck_assert_msg(tracker != NULL, "%s", error ? error->message : "");
  v.qmp = hmmv_qemu_dirty_tracker_get_qmp(tracker);
  ck_assert_msg(hmmv_tracker_start(tracker, vm, &error), "%s", error ? error->message : "");
  acc = hmmv_access_new(hmmv_vm_get_nr_pages(vm), &error);
  ck_assert(acc != NULL);
  ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s",
                error ? error->message : "");
  vmem_resize(&v, PLUG_SIZE);
  hmmv_access_clear(acc);
  ck_assert(!hmmv_tracker_harvest(tracker, vm, acc, &error));
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_LAYOUT_CHANGED), "%s",
                error->message);
  ck_assert_msg(strstr(error->message, "had memory plugged or unplugged") != NULL, "%s",
                error->message);
  printf("# tracker: %" G_GUINT64_FORMAT " pages before the plug; after it: %s\n", pages,
         error->message);
  g_clear_error(&error);
  hmmv_access_free(acc);
  hmmv_tracker_stop(tracker);
  after = hmmv_qemu_vm_new(v.qmp, "guest", &error);
  ck_assert_msg(after != NULL, "%s", error ? error->message : "");
  ck_assert_uint_eq(hmmv_vm_get_nr_pages(after), pages + PLUG_SIZE / HMMV_PAGE_SIZE);
  v.qmp = NULL;   /* the tracker's */
  g_clear_pointer(&tracker, hmmv_tracker_free);
  vmem_shutdown(&v);
}
END_TEST

static const char *const hot_add_args[] = {
  "-m", "128M,maxmem=1152M",
  "-object", "memory-backend-ram,id=vmem1,size=1G",
  NULL,
};

/* A virtio-mem device hot-plugged on a backend the export already has (its listener is
 * registered then, in the export's region_add): the block's mapping changes (REMAPPED, one
 * event), QEMU reports its granularity and no populated part, and hmmv-stop unregisters the
 * listener without a change. */
START_TEST(test_hot_add)
{
  Vmem v;
  g_autoptr(JsonObject) before = NULL;
  g_autoptr(JsonObject) dev = NULL;
  g_autoptr(JsonObject) args = json_object_new();
  g_autoptr(JsonNode) ret = NULL;
  g_autoptr(JsonNode) stop = NULL;
  g_autoptr(JsonNode) info = NULL;
  guint64 header_before;
  guint32 generation;

  vmem_boot(&v, guest_path, 128, "phases=1 pages=8 wait=1", hot_add_args, "HMMV-GUEST-READY",
            SERIAL_TIMEOUT_MS, TRUE);
  before = block_of(&v, "vmem1", NULL);
  ck_assert(!json_object_has_member(before, "discard-granularity"));
  ck_assert_uint_eq(json_array_get_length(json_object_get_array_member(before, "ranges")), 0);
  ck_assert_uint_eq(block_generation(&v, before), 0);
  header_before = header_layout_generation(&v);
  json_object_set_string_member(args, "driver", "virtio-mem-pci");
  json_object_set_string_member(args, "id", "vm1");
  json_object_set_string_member(args, "memdev", "vmem1");
  json_object_set_int_member(args, "block-size", (gint64)GRANULE);
  ret = hmmv_test_qmp_ok(v.qmp, "device_add", args);
  dev = block_of(&v, "vmem1", NULL);
  ck_assert_uint_eq(populated_bytes(dev, GRANULE), 0);
  ck_assert_uint_gt(json_array_get_length(json_object_get_array_member(dev, "ranges")), 0);
  generation = block_generation(&v, dev);
  ck_assert_uint_eq(generation, 1);
  ck_assert(desc_of(&v, dev)->flags & HMMV_SHM_BLOCK_F_REMAPPED);
  ck_assert_uint_eq(header_layout_generation(&v), header_before + 1);
  ck_assert(!header_stale(&v));
  ck_assert_uint_eq(expect_events(&v, json_object_get_string_member(dev, "name"), 1), 1);
  ck_assert_uint_eq(layout_bytes(&v, json_object_get_string_member(dev, "name")), 0);
  stop = hmmv_test_qmp_ok(v.qmp, "hmmv-stop", NULL);
  info = hmmv_test_qmp_ok(v.qmp, "query-hmmv", NULL);
  ck_assert_uint_eq(json_object_get_int_member(json_node_get_object(info), "layout-generation"),
                    header_before + 1);
  printf("# hot-add: virtio-mem-pci on vmem1 (exported, unmapped at hmmv-start): block "
         "generation 0 -> 1 (REMAPPED), header %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT
         ", no populated part; hmmv-stop changed nothing\n", header_before, header_before + 1);
  vmem_shutdown(&v);
}
END_TEST

static Suite *
vmem_suite(gboolean plug)
{
  Suite *s = suite_create("qemu-virtio-mem");
  TCase *tc = tcase_create("virtio-mem");

  tcase_set_timeout(tc, 240);
  if (plug) {
    tcase_add_test(tc, test_plug_unplug);
    tcase_add_test(tc, test_plug_tracker);
  } else {
    tcase_add_test(tc, test_all_discarded);
    tcase_add_test(tc, test_hot_add);
  }
  suite_add_tcase(s, tc);
  return s;
}

/* The virtio-mem guest's images (HMMV_VMEM_GUEST_BUILD: virtio-mem-guest/build-image), or
 * NULL with why. */
static char *
vmem_guest_images(char **why)
{
  const char *script = g_getenv("HMMV_VMEM_GUEST_BUILD");
  const char *argv[] = { script, NULL };
  g_autofree char *out = NULL, *err = NULL;
  g_autoptr(GError) error = NULL;
  int status = 0;

  if (script == NULL) {
    *why = g_strdup("HMMV_VMEM_GUEST_BUILD is not set (meson sets it)");
    return NULL;
  }
  if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err,
                    &status, &error)) {
    *why = g_strdup_printf("%s: %s", script, error->message);
    return NULL;
  }
  if (!g_spawn_check_wait_status(status, NULL)) {
    *why = g_strdup_printf("%s: %s", script, g_strstrip(err));
    return NULL;
  }
  return g_strdup(g_strstrip(out));
}

static const char *const patches[] = {
  "0016-hmmv-follow-virtio-mem-s-plugged-and-unplugged-memor.patch", /* 10.0 */
};

/* all-discarded (the test guest) or plug-unplug (the virtio-mem guest): two meson tests. */
int
main(int argc, char **argv)
{
  g_autofree char *why = NULL, *help = NULL;
  const char *help_argv[] = { NULL, "-device", "help", NULL };
  gboolean plug = argc > 1 && g_strcmp0(argv[1], "plug-unplug") == 0;
  int status = 0;

  if (!hmmv_harness_prepare(NULL, &qemu_path, &guest_path, &why))
    return hmmv_test_skip_all(why);
  if (!hmmv_harness_built_with(qemu_path, patches, G_N_ELEMENTS(patches),
                               "virtio-mem's populated parts (10.0: 0016)", &why))
    return hmmv_test_skip_all(why);
  help_argv[0] = qemu_path;
  if (!g_spawn_sync(NULL, (char **)help_argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
                    &help, NULL, &status, NULL) ||
      strstr(help, "\"virtio-mem-pci\"") == NULL)
    return hmmv_test_skip_all("this QEMU has no virtio-mem-pci device");
  if (plug) {
    vmem_images = vmem_guest_images(&why);
    if (vmem_images == NULL)
      return hmmv_test_skip_all(why);
  }
  return hmmv_test_run(vmem_suite(plug));
}
