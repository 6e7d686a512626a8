/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The filesystem seam of the kernel-facing trackers: the real files under a root, or any
 * other implementation (the unit tests' fake DAMON tree). Writes go out in one write(2) as
 * sysfs wants them; the kernel's errno is kept so that callers can tell EBUSY from EINVAL.
 */
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <hmmv/error.h>
#include <hmmv/reads.h>
#include <string.h>
#include <unistd.h>

/* A sysfs attribute is at most one page. */
#define SYSFS_MAX_BYTES 4096

typedef struct {
  char *root;
} DirFs;

static char *
dir_path(HmmvSysfs *fs, const char *path)
{
  DirFs *dir = fs->priv;

  return g_build_filename(dir->root, path, NULL);
}

static gboolean
dir_read(HmmvSysfs *fs, const char *path, char **contents, GError **error)
{
  g_autofree char *full = dir_path(fs, path);
  char buf[SYSFS_MAX_BYTES + 1];
  ssize_t n;
  int fd = open(full, O_RDONLY | O_CLOEXEC);

  if (fd < 0) {
    int saved = errno;

    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved), "%s: %s", full,
                g_strerror(saved));
    return FALSE;
  }
  n = read(fd, buf, SYSFS_MAX_BYTES);
  if (n < 0) {
    int saved = errno;

    close(fd);
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved), "%s: %s", full,
                g_strerror(saved));
    return FALSE;
  }
  close(fd);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
    n--;
  buf[n] = '\0';
  *contents = g_strdup(buf);
  return TRUE;
}

static gboolean
dir_write(HmmvSysfs *fs, const char *path, const char *value, GError **error)
{
  g_autofree char *full = dir_path(fs, path);
  size_t len = strlen(value);
  ssize_t n;
  int fd = open(full, O_WRONLY | O_CLOEXEC);

  if (fd < 0) {
    int saved = errno;

    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved), "%s: %s", full,
                g_strerror(saved));
    return FALSE;
  }
  n = write(fd, value, len);
  if (n < 0 || (size_t)n != len) {
    int saved = n < 0 ? errno : EIO;

    close(fd);
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved), "writing \"%s\" to %s: %s",
                value, full, g_strerror(saved));
    return FALSE;
  }
  close(fd);
  return TRUE;
}

static gboolean
dir_exists(HmmvSysfs *fs, const char *path)
{
  g_autofree char *full = dir_path(fs, path);

  return access(full, F_OK) == 0;
}

static void
dir_destroy(HmmvSysfs *fs)
{
  DirFs *dir = fs->priv;

  g_free(dir->root);
  g_free(dir);
}

static const struct hmmv_sysfs_ops dir_ops = {
  .name = "dir",
  .read = dir_read,
  .write = dir_write,
  .exists = dir_exists,
  .destroy = dir_destroy,
};

HmmvSysfs *
hmmv_sysfs_new(const struct hmmv_sysfs_ops *ops, gpointer priv)
{
  HmmvSysfs *fs = g_new0(HmmvSysfs, 1);

  fs->ops = ops;
  fs->priv = priv;
  fs->ref_count = 1;
  return fs;
}

HmmvSysfs *
hmmv_sysfs_new_dir(const char *root)
{
  DirFs *dir = g_new0(DirFs, 1);

  dir->root = g_strdup(root);
  return hmmv_sysfs_new(&dir_ops, dir);
}

HmmvSysfs *
hmmv_sysfs_ref(HmmvSysfs *fs)
{
  g_atomic_int_inc(&fs->ref_count);
  return fs;
}

void
hmmv_sysfs_unref(HmmvSysfs *fs)
{
  if (fs == NULL || !g_atomic_int_dec_and_test(&fs->ref_count))
    return;
  if (fs->ops->destroy != NULL)
    fs->ops->destroy(fs);
  g_free(fs);
}

gboolean
hmmv_sysfs_read(HmmvSysfs *fs, const char *path, char **contents, GError **error)
{
  return fs->ops->read(fs, path, contents, error);
}

gboolean
hmmv_sysfs_read_u64(HmmvSysfs *fs, const char *path, guint64 *value, GError **error)
{
  g_autofree char *text = NULL;

  if (!hmmv_sysfs_read(fs, path, &text, error))
    return FALSE;
  if (!g_ascii_string_to_unsigned(g_strstrip(text), 10, 0, G_MAXUINT64, value, NULL)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "%s: \"%s\" is not a number", path,
                text);
    return FALSE;
  }
  return TRUE;
}

gboolean
hmmv_sysfs_write(HmmvSysfs *fs, const char *path, const char *value, GError **error)
{
  return fs->ops->write(fs, path, value, error);
}

gboolean
hmmv_sysfs_write_u64(HmmvSysfs *fs, const char *path, guint64 value, GError **error)
{
  char buf[32];

  g_snprintf(buf, sizeof(buf), "%" G_GUINT64_FORMAT, value);
  return hmmv_sysfs_write(fs, path, buf, error);
}

gboolean
hmmv_sysfs_exists(HmmvSysfs *fs, const char *path)
{
  return fs->ops->exists(fs, path);
}
