/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Operation=hotplug of experiments (ExperimentContext.hotplug, hotplug_cancel): a step of the guest's virtio-mem
 * device through manager_hotplug_set(), the call behind SetHotplugMemory (so the same checks, the same qom-set of
 * requested-size and the same following of its size as `memvisorctl hotplug --wait`), its answer handed to the
 * run as a typed result. The experiment's own calls pass its GuestBusy check (manager-experiment.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager-experiment.h"

typedef struct HotplugOp {
        ExperimentHotplugDone done;     /* NULL: nobody waits (a return step at the end of a run) */
        void *done_userdata;
        bool in_call;                   /* inside manager_hotplug_set(): a drop there is its failure */
        bool detached;                  /* cancelled: done() came already, the answer is only freed */
} HotplugOp;

static void op_done(const char *error, json_object *parameters, void *userdata) {
        _cleanup_json_ json_object *p = parameters;
        HotplugOp *op = userdata;
        json_object *h = NULL;
        int64_t size = -1, elapsed = 0;

        if (op->done && !op->detached) {
                if (error) {
                        const char *reason = json_get_string(p, "reason");

                        op->done(streq(error, VARLINK_ERROR(HOTPLUG_TIMEOUT)) ? -ETIMEDOUT : -EIO,
                                 reason ?: error, UINT64_MAX, 0, op->done_userdata);
                } else {
                        if (json_object_object_get_ex(p, "hotplug", &h) && h) {
                                size = json_get_int(h, "sizeBytes", -1);
                                elapsed = json_get_int(h, "elapsedUSec", 0);
                        }
                        op->done(0, NULL, size < 0 ? UINT64_MAX : (uint64_t) size, elapsed < 0 ? 0 : (uint64_t) elapsed,
                                 op->done_userdata);
                }
        }
        free(op);
}

/* The call went away without an answer: the daemon stops (or it failed at once, in_call). */
static void op_free(void *userdata) {
        HotplugOp *op = userdata;

        if (op->in_call) {
                op->detached = true;    /* manager_experiment_hotplug() frees it when the call returns */
                return;
        }
        if (op->done && !op->detached)
                op->done(-ECANCELED, "the daemon is stopping", UINT64_MAX, 0, op->done_userdata);
        free(op);
}

int manager_experiment_hotplug(Manager *m, const char *guest, uint64_t size_bytes, bool wait, uint64_t timeout_usec,
                               ExperimentHotplugDone done, void *done_userdata, void **ret_handle,
                               char **ret_reason) {
        ManagerCompletion completion;
        ManagerError e = {};
        HotplugOp *op;
        int r;

        op = calloc(1, sizeof(HotplugOp));
        if (!op)
                return -ENOMEM;
        *op = (HotplugOp) { .done = done, .done_userdata = done_userdata, .in_call = true };
        completion = (ManagerCompletion) { .done = op_done, .free = op_free, .userdata = op };
        r = manager_hotplug_set(m, guest, size_bytes, wait, timeout_usec, "an experiment", NULL, &completion, &e);
        if (r < 0) {
                /* Nothing was sent and the completion was dropped: no answer comes. */
                const char *reason = json_get_string(e.parameters, "reason");

                if (ret_reason && (reason || e.name))
                        *ret_reason = strdup(reason ?: e.name);
                manager_error_done(&e);
                free(op);
                return r;
        }
        op->in_call = false;
        if (ret_handle)
                *ret_handle = op;
        return 0;
}

void manager_experiment_hotplug_cancel(void *handle) {
        HotplugOp *op = handle;

        if (!op || op->detached)
                return;
        op->detached = true;
        if (op->done)
                op->done(-ECANCELED, "cancelled", UINT64_MAX, 0, op->done_userdata);
}
