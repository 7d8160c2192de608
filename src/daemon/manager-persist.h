/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The guests' records (balloon, page migrations) in STATE_DIR/guests/NAME/, kept over restarts of memvisord
 * (manager-persist.c says where, when and what happens when a save fails or a file is bad). */

#include "daemon/manager-guest.h"
#include "daemon/manager.h"

/* Opens STATE_DIR/guests and loads the records of the guests defined now (before they are re-adopted by the
 * feature modules). */
int manager_persist_start(Manager *m);
/* Saves what is still to be saved, closes the directory. */
void manager_persist_done(Manager *m);

/* The balloon controller of g, made with the change callback that has its record saved. */
int manager_guest_balloon_new(Manager *m, ManagerGuest *g);
/* Saves name's balloon record now if it changed (before a call that changed it is answered). */
void manager_persist_flush(Manager *m, const char *name);
int manager_persist_save_balloon(Manager *m, ManagerGuest *g);
/* Saves name's migration history now (a report was recorded). */
int manager_persist_save_migrations(Manager *m, const char *name);
/* UndefineVM: removes STATE_DIR/guests/NAME and what is in it. */
void manager_persist_remove(Manager *m, const char *name);
