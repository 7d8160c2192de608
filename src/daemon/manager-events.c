/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest event stream: SubscribeEvents calls in progress and the events sent to them ("subscribed",
 * "defined", "redefined", "undefined", "state"). */
#include <time.h>

#include "basic/json-util.h"
#include "daemon/manager-events.h"


static uint64_t now_realtime(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static void subscriber_closed(VarlinkConnection *c, void *userdata) {
        Manager *m = userdata;

        for (size_t i = 0; i < m->n_subscribers; i++)
                if (m->subscribers[i] == c) {
                        memmove(m->subscribers + i, m->subscribers + i + 1,
                                (m->n_subscribers - i - 1) * sizeof(VarlinkConnection *));
                        m->n_subscribers--;
                        varlink_connection_unref(c);
                        return;
                }
}

static void manager_broadcast(Manager *m, json_object *event) {
        /* Notifying may close a slow subscriber (output limit), which edits the list: walk a copy. */
        size_t n = m->n_subscribers;
        VarlinkConnection *copy[MANAGER_MAX_SUBSCRIBERS];

        memcpy(copy, m->subscribers, n * sizeof(VarlinkConnection *));
        for (size_t i = 0; i < n; i++)
                varlink_connection_ref(copy[i]);
        for (size_t i = 0; i < n; i++) {
                if (!varlink_connection_is_closed(copy[i]))
                        (void) varlink_notify(copy[i], json_object_get(event));
                varlink_connection_unref(copy[i]);
        }
}

static json_object *event_new(const char *type, Vm *vm) {
        _cleanup_json_ json_object *e = json_object_new_object();

        if (!e || json_add_string(e, "event", type) < 0 || json_add_uint(e, "realtimeUSec", now_realtime()) < 0)
                return NULL;
        if (vm && json_add_string(e, "vm", vm->name) < 0)
                return NULL;
        return TAKE_PTR(e);
}

void manager_events_emit(Manager *m, const char *type, Vm *vm) {
        _cleanup_json_ json_object *e = NULL;

        if (m->n_subscribers == 0)
                return;
        e = event_new(type, vm);
        if (e)
                manager_broadcast(m, e);
}

void manager_events_vm_state(Manager *m, Vm *vm, VmState old_state) {
        _cleanup_json_ json_object *e = NULL;

        if (m->n_subscribers == 0)
                return;
        e = event_new("state", vm);
        if (e && json_add_string(e, "state", vm_state_to_string(vm->state)) >= 0 &&
            json_add_string(e, "previousState", vm_state_to_string(old_state)) >= 0 &&
            json_add_string(e, "reason", vm->reason) >= 0 && json_add_uint(e, "restarts", vm->restarts) >= 0 &&
            (!vm_is_active(vm) || json_add_int(e, "pid", vm->pid) >= 0))
                manager_broadcast(m, e);
}

int manager_events_subscribe(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        _cleanup_json_ json_object *e = NULL, *list = NULL;
        VarlinkConnection **t;
        int r;

        if (m->n_subscribers >= MANAGER_MAX_SUBSCRIBERS)
                return varlink_error(c, VARLINK_ERROR(TOO_MANY_SUBSCRIBERS), NULL);
        r = vm_table_summary_json(&m->guests, &list);
        if (r < 0)
                return r;
        e = event_new("subscribed", NULL);
        if (!e || json_add(e, "vms", TAKE_PTR(list)) < 0)
                return -ENOMEM;

        t = realloc(m->subscribers, (m->n_subscribers + 1) * sizeof(VarlinkConnection *));
        if (!t)
                return -ENOMEM;
        m->subscribers = t;
        m->subscribers[m->n_subscribers++] = varlink_connection_ref(c);
        varlink_connection_set_close_callback(c, subscriber_closed, m);

        return varlink_notify(c, TAKE_PTR(e));
}

void manager_events_done(Manager *m) {
        for (size_t i = 0; i < m->n_subscribers; i++)
                varlink_connection_unref(m->subscribers[i]);
        m->subscribers = mfree(m->subscribers);
        m->n_subscribers = 0;
}
