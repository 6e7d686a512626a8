/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * /proc/zoneinfo, read for what a page migration can take on each node (topology-free.c
 * says why; the rule is there).
 *
 * A line-oriented scan of the three things needed from each zone: "pages free N", the
 * first "min N" after it, and "protection: (a, b, ...)" (the zone's lowmem_reserve, one
 * entry per zone type), under each "Node N, zone NAME" header. Everything else (per-node
 * and per-zone counters, pagesets) is skipped. The kernel prints every zone of a node,
 * populated or not, in zone order, each with a protection array as long as the list of
 * zone types (mm/vmstat.c zoneinfo_show_print), so a node is complete once it has as many
 * zones as its protection arrays have entries: a text cut short is seen as such, and the
 * reader can stop as soon as the nodes it needs are complete.
 */
#include "topology-private.h"

#include <hmmv/error.h>
#include <string.h>

/* x86-64 has 5 zone types with ZONE_DEVICE (DMA, DMA32, Normal, Movable, Device); 32-bit
 * adds HighMem. More is not the kernel's zoneinfo. */
#define ZONEINFO_MAX_ZONES 8
/* a zone's counts are pages: bounded so that sums and the byte figure cannot overflow */
#define ZONEINFO_MAX_PAGES (G_MAXUINT64 >> 24)

typedef struct {
  char name[16];
  guint64 free_pages;
  guint64 min_pages;
  guint64 protection[ZONEINFO_MAX_ZONES];
  guint nr_protection;        /* 0 until the protection line */
  gboolean have_free;
  gboolean have_min;
} Zone;

typedef struct {
  int node;                   /* -1 before the first header */
  guint nr_zones;
  Zone zones[ZONEINFO_MAX_ZONES];
  guint line;                 /* 1-based, for the errors */
  HmmvZoneinfoNode *out;
} Scan;

static gboolean
corrupt(const Scan *scan, GError **error, const char *what)
{
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT, "zoneinfo line %u: %s", scan->line,
              what);
  return FALSE;
}

static gboolean
parse_pages(const char *word, guint64 *pages)
{
  return g_ascii_isdigit(word[0]) &&
         g_ascii_string_to_unsigned(word, 10, 0, ZONEINFO_MAX_PAGES, pages, NULL);
}

/* A zone followed by another header must have had its three lines. */
static gboolean
zone_whole(const Scan *scan, const Zone *zone, GError **error)
{
  if (zone->have_free && zone->have_min && zone->nr_protection != 0)
    return TRUE;
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
              "zoneinfo: node %d zone %s has no \"%s\" line", scan->node, zone->name,
              !zone->have_free ? "pages free" : !zone->have_min ? "min" : "protection");
  return FALSE;
}

/* The zones of scan->node so far, into scan->out: complete when every zone has its three
 * lines and there are as many zones as protection entries. `closed`: no more zones of
 * this node will come (another node's header, or the end of the whole file). */
static gboolean
finish_node(Scan *scan, gboolean closed, GError **error)
{
  HmmvZoneinfoNode *out;
  guint nr_types = 0;
  int movable = -1;

  if (scan->node < 0)
    return TRUE;
  for (guint z = 0; z < scan->nr_zones; z++) {
    const Zone *zone = &scan->zones[z];

    if ((z + 1 < scan->nr_zones || closed) && !zone_whole(scan, zone, error))
      return FALSE;
    if (zone->nr_protection != 0) {
      if (nr_types != 0 && zone->nr_protection != nr_types) {
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                    "zoneinfo: node %d zone %s has %u protection entries, its other zones %u",
                    scan->node, zone->name, zone->nr_protection, nr_types);
        return FALSE;
      }
      nr_types = zone->nr_protection;
    }
    if (strcmp(zone->name, "Movable") == 0)
      movable = (int)z;
  }
  if (scan->node > HMMV_MAX_NODE_ID)
    return TRUE;                 /* a node hmmv cannot place pages on: not counted */
  out = &scan->out[scan->node];
  memset(out, 0, sizeof(*out));
  out->nr_zones = scan->nr_zones;
  out->complete = scan->nr_zones > 0 && scan->nr_zones == nr_types &&
                  scan->zones[scan->nr_zones - 1].nr_protection != 0;
  if (closed && !out->complete) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                "zoneinfo: node %d lists %u zones, its protection arrays %u: cut short",
                scan->node, scan->nr_zones, nr_types);
    return FALSE;
  }
  if (!out->complete)
    return TRUE;
  if (movable < 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                "zoneinfo: node %d has no Movable zone (the protection entry a user page's "
                "allocation is held to)", scan->node);
    return FALSE;
  }
  for (guint z = 0; z < scan->nr_zones; z++) {
    const Zone *zone = &scan->zones[z];
    guint64 kept = zone->min_pages + zone->protection[movable];

    out->free_pages += zone->free_pages;
    out->kept_pages += MIN(kept, zone->free_pages);
    if (zone->free_pages > kept)
      out->usable_pages += zone->free_pages - kept;
  }
  return TRUE;
}

static gboolean
header(Scan *scan, char **words, guint nr, GError **error)
{
  guint64 node;
  Zone *zone;
  gsize len;

  len = nr == 4 ? strlen(words[1]) : 0;
  if (len < 2 || words[1][len - 1] != ',' || strcmp(words[2], "zone") != 0)
    return corrupt(scan, error, "not \"Node N, zone NAME\"");
  words[1][len - 1] = '\0';
  if (!g_ascii_isdigit(words[1][0]) ||
      !g_ascii_string_to_unsigned(words[1], 10, 0, 1023, &node, NULL))
    return corrupt(scan, error, "the node is not a number of 0..1023");
  if (scan->nr_zones > 0 && !zone_whole(scan, &scan->zones[scan->nr_zones - 1], error))
    return FALSE;
  if ((int)node != scan->node) {
    if ((int)node < scan->node)
      return corrupt(scan, error, "the nodes are not in ascending order");
    if (!finish_node(scan, TRUE, error))
      return FALSE;
    scan->node = (int)node;
    scan->nr_zones = 0;
  }
  if (scan->nr_zones == ZONEINFO_MAX_ZONES)
    return corrupt(scan, error, "more than 8 zones in a node");
  if (strlen(words[3]) >= sizeof(zone->name))
    return corrupt(scan, error, "a zone name longer than 15 characters");
  zone = &scan->zones[scan->nr_zones++];
  memset(zone, 0, sizeof(*zone));
  g_strlcpy(zone->name, words[3], sizeof(zone->name));
  return TRUE;
}

/* "protection: (0, 3018, 9546, 9546, 9546)", already split at blanks */
static gboolean
protection(Scan *scan, Zone *zone, char *const *words, guint nr, GError **error)
{
  g_autofree char *joined = g_strjoinv("", (char **)words + 1);
  gsize len = strlen(joined);
  g_auto(GStrv) entries = NULL;

  if (zone->nr_protection != 0)
    return corrupt(scan, error, "a second protection line in the zone");
  if (nr < 2 || len < 3 || joined[0] != '(' || joined[len - 1] != ')')
    return corrupt(scan, error, "not \"protection: (N, N, ...)\"");
  joined[len - 1] = '\0';
  entries = g_strsplit(joined + 1, ",", -1);
  if (g_strv_length(entries) > ZONEINFO_MAX_ZONES)
    return corrupt(scan, error, "more than 8 protection entries");
  for (guint i = 0; entries[i] != NULL; i++) {
    if (!parse_pages(entries[i], &zone->protection[i]))
      return corrupt(scan, error, "a protection entry is not a number of pages");
  }
  zone->nr_protection = g_strv_length(entries);
  return TRUE;
}

/* Only lines that start (after blanks) with these words matter; the others (counters,
 * pagesets: nine in ten) are skipped before being split. */
static gboolean
wanted(const char *line)
{
  static const char *const starts[] = { "Node", "pages", "min", "protection:" };

  line += strspn(line, " \t");
  for (guint i = 0; i < G_N_ELEMENTS(starts); i++) {
    if (g_str_has_prefix(line, starts[i]))
      return TRUE;
  }
  return FALSE;
}

static gboolean
scan_line(Scan *scan, char *line, GError **error)
{
  g_auto(GStrv) words = NULL;
  g_autoptr(GPtrArray) kept = NULL;
  char **w;
  Zone *zone;

  words = g_strsplit_set(line, " \t", -1);
  kept = g_ptr_array_new();
  for (guint i = 0; words[i] != NULL; i++) {
    if (words[i][0] != '\0')
      g_ptr_array_add(kept, words[i]);
  }
  g_ptr_array_add(kept, NULL);
  w = (char **)kept->pdata;
  if (kept->len == 1)
    return TRUE;
  if (strcmp(w[0], "Node") == 0 && line[0] == 'N')
    return header(scan, w, kept->len - 1, error);
  if (scan->node < 0)
    return corrupt(scan, error, "text before the first \"Node N, zone NAME\" line");
  zone = &scan->zones[scan->nr_zones - 1];
  if (kept->len == 4 && strcmp(w[0], "pages") == 0 && strcmp(w[1], "free") == 0) {
    if (zone->have_free || !parse_pages(w[2], &zone->free_pages))
      return corrupt(scan, error, "not one \"pages free N\" in the zone");
    zone->have_free = TRUE;
  } else if (kept->len == 3 && strcmp(w[0], "min") == 0 && zone->have_free &&
             !zone->have_min) {
    if (!parse_pages(w[1], &zone->min_pages))
      return corrupt(scan, error, "not \"min N\"");
    zone->have_min = TRUE;
  } else if (strcmp(w[0], "protection:") == 0) {
    return protection(scan, zone, w, kept->len - 1, error);
  }
  return TRUE;
}

gboolean
hmmv_zoneinfo_parse(const char *text, gsize len, gboolean whole,
                    HmmvZoneinfoNode nodes[HMMV_MAX_NODE_ID + 1], GError **error)
{
  Scan scan = { .node = -1, .out = nodes };
  const char *end = text + len;
  const char *p = text;

  memset(nodes, 0, sizeof(HmmvZoneinfoNode) * (HMMV_MAX_NODE_ID + 1));
  if (memchr(text, '\0', len) != NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT, "zoneinfo: a NUL byte in the text");
    return FALSE;
  }
  if (whole && len > 0 && text[len - 1] != '\n') {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                "zoneinfo: the text ends in the middle of a line");
    return FALSE;
  }
  while (p < end) {
    const char *nl = memchr(p, '\n', (gsize)(end - p));
    g_autofree char *line = NULL;

    if (nl == NULL)
      break;                       /* a partial last line: the next read completes it */
    scan.line++;
    /* the line ends in '\n', where wanted() stops: it reads no further */
    if (scan.node < 0 || wanted(p)) {
      line = g_strndup(p, (gsize)(nl - p));
      if (!scan_line(&scan, line, error))
        return FALSE;
    }
    p = nl + 1;
  }
  if (whole && scan.node < 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT, "zoneinfo: no \"Node N, zone\" line");
    return FALSE;
  }
  return finish_node(&scan, whole, error);
}
