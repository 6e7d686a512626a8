/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * /proc/PID/maps: parsing, and the coverage check that bounds the sizes QEMU claims.
 */
#include "hmmv-test.h"
#include "procmaps.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

START_TEST(test_parse_and_cover)
{
  static const char text[] =
    "1000-3000 rw-p 00000000 00:00 0\n"
    "3000-4000 rw-s 00000000 00:01 7 /memfd:pc.ram (deleted)\n"
    "4000-5000 r--p 00000000 00:00 0\n"
    "6000-8000 rw-p 00000000 00:00 0 [heap]\n";
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) maps = hmmv_proc_maps_parse(text, strlen(text), &error);

  ck_assert_msg(maps != NULL, "%s", error ? error->message : "");
  ck_assert_uint_eq(maps->len, 4);
  ck_assert(hmmv_proc_maps_cover(maps, 0x1000, 0x3000));    /* two adjacent writable */
  ck_assert(hmmv_proc_maps_cover(maps, 0x2000, 0x1000));
  ck_assert(hmmv_proc_maps_cover(maps, 0x6000, 0x2000));
  ck_assert(!hmmv_proc_maps_cover(maps, 0x1000, 0x4000));   /* read-only part */
  ck_assert(!hmmv_proc_maps_cover(maps, 0x0, 0x2000));      /* starts unmapped */
  ck_assert(!hmmv_proc_maps_cover(maps, 0x6000, 0x3000));   /* runs past the end */
  ck_assert(!hmmv_proc_maps_cover(maps, 0x5000, 0x2000));   /* a hole */
  ck_assert(!hmmv_proc_maps_cover(maps, 0x1000, 0));
  ck_assert(!hmmv_proc_maps_cover(maps, G_MAXUINT64 - 0xfff, 0x2000));
}
END_TEST

START_TEST(test_parse_errors)
{
  static const char *const bad[] = {
    "zz-3000 rw-p 0 0:0 0\n",
    "3000-1000 rw-p 0 0:0 0\n",
    "1000-3000\n",
    "1000-3000 rw-p 0 0:0 0\n2000-4000 rw-p 0 0:0 0\n",   /* overlapping, out of order */
  };

  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) error = NULL;

    ck_assert_msg(hmmv_proc_maps_parse(bad[i], strlen(bad[i]), &error) == NULL, "%s", bad[i]);
    ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_CORRUPT));
  }
}
END_TEST

/* The real thing: this process's own mappings. */
START_TEST(test_own_maps)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) maps = hmmv_proc_maps_read(getpid(), &error);
  gsize size = 16 * 4096;
  guint8 *rw = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

  ck_assert(rw != MAP_FAILED);
  g_clear_pointer(&maps, g_array_unref);
  ck_assert_int_eq(mprotect(rw + 8 * 4096, 4096, PROT_READ), 0);
  maps = hmmv_proc_maps_read(getpid(), &error);
  ck_assert_msg(maps != NULL, "%s", error ? error->message : "");
  ck_assert(hmmv_proc_maps_cover(maps, (guint64)(guintptr)rw, 8 * 4096));
  ck_assert(!hmmv_proc_maps_cover(maps, (guint64)(guintptr)rw, size));
  munmap(rw, size);
  ck_assert(hmmv_proc_maps_read(0, &error) == NULL);
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED));
}
END_TEST

static Suite *
procmaps_suite(void)
{
  Suite *suite = suite_create("procmaps");
  TCase *tc = tcase_create("maps");

  tcase_add_test(tc, test_parse_and_cover);
  tcase_add_test(tc, test_parse_errors);
  tcase_add_test(tc, test_own_maps);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(procmaps_suite());
}
