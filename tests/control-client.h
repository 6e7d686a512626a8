/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control socket suites' fixture and client (test-control.c, test-control-served.c): a
 * test bed with one VM, vm1 (1,024 pages), a socket path in a private directory, and a client
 * on its own thread that talks to hmmvd's control socket while the calling thread runs the
 * default main context (where the server lives).
 */
#pragma once

#include "control.h"
#include "hmmvd-test.h"

typedef struct {
  HmmvdTestBed bed;
  char *tmpdir;
  char *sock_dir;      /* tmpdir/run */
  char *path;          /* tmpdir/run/hmmvd.sock */
} ControlFixture;

/* The suites' fixture, set up and torn down around each case (Check's fixtures take no
 * argument, hence one for the process). */
extern ControlFixture control_fx;
void control_fixture_setup(void);
void control_fixture_teardown(void);
/* A control server on the fixture's socket path, serving its bed. */
HmmvdControl *control_fixture_start(void);

/* Dispatches what is pending on the default main context (at most 100 sources). */
void control_drain_main_context(void);

typedef struct {
  GPtrArray *requests;      /* raw bytes to send, each one write */
  guint expect_lines;
  guint extra_connections;  /* connections opened and held before the real one */
  GString *response;
  gint done;                /* atomic: the client has its lines (or gave up) */
} ControlJob;

/* A client thread left running while the test goes on: it opens extra_connections to the
 * fixture's socket and holds them, connects once more, writes each of the nr lines (one
 * write each) and reads until it has expect_lines lines. control_job_finish() runs the main
 * context until the job is done, joins the thread and returns what it read. */
ControlJob *control_job_start(const char *const *lines, gsize nr, guint expect_lines,
                              guint extra_connections, GThread **thread);
char *control_job_finish(ControlJob *job, GThread *thread);
/* Both at once. */
char *control_talk(const char *const *lines, gsize nr, guint expect_lines,
                   guint extra_connections);
