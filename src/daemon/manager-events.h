/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* manager-events.c: the guest event stream (SubscribeEvents) that manager-vms.c feeds. */

#include "daemon/manager.h"

/* Sends {"event": type, "realtimeUSec": …, "vm": name} to every subscriber (vm may be NULL). */
void manager_events_emit(Manager *m, const char *type, Vm *vm);
/* The "state" event of a guest that changed state. */
void manager_events_vm_state(Manager *m, Vm *vm, VmState old_state);
/* The SubscribeEvents method. */
int manager_events_subscribe(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata);
/* Lets go of the subscribers (the daemon is going away). */
void manager_events_done(Manager *m);
