/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "control-client.h"

#include <check.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <string.h>

ControlFixture control_fx;

void
control_fixture_setup(void)
{
  ControlFixture *fx = &control_fx;

  memset(fx, 0, sizeof(*fx));
  hmmvd_test_bed_init(&fx->bed, 4u << 20, 64u << 20, NULL);
  ck_assert(hmmvd_vms_add_with_tracker(fx->bed.vms, "vm1", HMMVD_SOURCE_STANDALONE, 1, NULL,
                                       hmmv_test_vm_new("vm1", 1024), hmmv_fake_tracker_new(),
                                       NULL));
  fx->tmpdir = g_dir_make_tmp("hmmv-test-control-XXXXXX", NULL);
  fx->sock_dir = g_build_filename(fx->tmpdir, "run", NULL);
  fx->path = g_build_filename(fx->sock_dir, "hmmvd.sock", NULL);
}

void
control_drain_main_context(void)
{
  for (guint i = 0; i < 100 && g_main_context_pending(NULL); i++)
    g_main_context_iteration(NULL, FALSE);
}

void
control_fixture_teardown(void)
{
  ControlFixture *fx = &control_fx;

  control_drain_main_context();
  g_unlink(fx->path);
  g_rmdir(fx->sock_dir);
  g_rmdir(fx->tmpdir);
  g_free(fx->path);
  g_free(fx->sock_dir);
  g_free(fx->tmpdir);
  hmmvd_test_bed_clear(&fx->bed);
}

HmmvdControl *
control_fixture_start(void)
{
  g_autoptr(GError) error = NULL;
  HmmvdControl *control = hmmvd_control_new(control_fx.bed.vms, control_fx.bed.topo, "sim",
                                            control_fx.path, &error);

  ck_assert_msg(control != NULL, "%s", error ? error->message : "");
  return control;
}

static gpointer
client_thread(gpointer data)
{
  ControlJob *job = data;
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new(control_fx.path);
  g_autoptr(GPtrArray) held = g_ptr_array_new_with_free_func(g_object_unref);
  g_autoptr(GSocketConnection) connection = NULL;
  char buf[4096];
  guint lines = 0;
  gssize n;

  g_socket_client_set_timeout(client, 10);
  /* A full listen backlog makes a Unix connect fail at once (EAGAIN): retry while the
   * server's loop accepts. */
  for (guint i = 0, tries = 0; i < job->extra_connections && tries < 1000; tries++) {
    GSocketConnection *held_one = g_socket_client_connect(client, G_SOCKET_CONNECTABLE(address),
                                                          NULL, NULL);

    if (held_one == NULL) {
      g_usleep(5000);
      continue;
    }
    g_ptr_array_add(held, held_one);
    i++;
  }
  g_usleep(100000);   /* let the server take every held connection first */
  connection = g_socket_client_connect(client, G_SOCKET_CONNECTABLE(address), NULL, NULL);
  for (guint i = 0; connection != NULL && i < job->requests->len; i++) {
    GBytes *bytes = g_ptr_array_index(job->requests, i);
    gsize size;
    gconstpointer data_ = g_bytes_get_data(bytes, &size);

    if (!g_output_stream_write_all(g_io_stream_get_output_stream(G_IO_STREAM(connection)),
                                   data_, size, NULL, NULL, NULL))
      break;
  }
  while (connection != NULL && lines < job->expect_lines &&
         (n = g_input_stream_read(g_io_stream_get_input_stream(G_IO_STREAM(connection)), buf,
                                  sizeof(buf), NULL, NULL)) > 0) {
    g_string_append_len(job->response, buf, n);
    for (gssize i = 0; i < n; i++)
      lines += buf[i] == '\n' ? 1 : 0;
  }
  g_atomic_int_set(&job->done, 1);
  g_main_context_wakeup(NULL);
  return NULL;
}

ControlJob *
control_job_start(const char *const *lines, gsize nr, guint expect_lines,
                  guint extra_connections, GThread **thread)
{
  ControlJob *job = g_new0(ControlJob, 1);

  job->requests = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
  job->expect_lines = expect_lines;
  job->extra_connections = extra_connections;
  job->response = g_string_new(NULL);
  for (gsize i = 0; i < nr; i++)
    g_ptr_array_add(job->requests, g_bytes_new(lines[i], strlen(lines[i])));
  *thread = g_thread_new("control-client", client_thread, job);
  return job;
}

char *
control_job_finish(ControlJob *job, GThread *thread)
{
  char *response;

  while (!g_atomic_int_get(&job->done))
    g_main_context_iteration(NULL, TRUE);
  g_thread_join(thread);
  g_ptr_array_unref(job->requests);
  response = g_string_free(job->response, FALSE);
  g_free(job);
  return response;
}

char *
control_talk(const char *const *lines, gsize nr, guint expect_lines, guint extra_connections)
{
  GThread *thread;
  ControlJob *job = control_job_start(lines, nr, expect_lines, extra_connections, &thread);

  return control_job_finish(job, thread);
}
