/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "basic/json-util.h"
#include "basic/worker.h"
#include "numa/numa-guest-placement.h"
#include "numa/numa-placement.h"
#include "numa/numa-topology.h"

struct NumaPlacementRead {
        json_object *placement;
        NumaResidency residency;
        char *path;
        Worker *worker;
        NumaPlacementCallback cb;
        void *userdata;
};

NumaPlacementRead *numa_placement_read_free(NumaPlacementRead *q) {
        if (!q)
                return NULL;
        worker_free(q->worker);
        json_object_put(q->placement);
        free(q->path);
        return mfree(q);
}

static int read_residency(Worker *w, void *arg) {
        NumaPlacementRead *q = arg;
        return numa_residency_read(q->path, &q->residency);
}

static void on_worker(Worker *w, int code, bool done, int result, void *userdata) {
        NumaPlacementRead *q = userdata;
        _cleanup_json_ json_object *res = NULL;
        int r;

        if (!done)
                return;
        if (result >= 0) {
                r = numa_residency_to_json(&q->residency, &res);
                if (r >= 0)
                        r = json_add(q->placement, "residency", TAKE_PTR(res));
                if (r >= 0)
                        r = json_add_uint(q->placement, "residentBytes", q->residency.total_bytes);
        } else
                r = json_add_string(q->placement, "residencyUnavailable", strerror(-result));
        q->cb(r < 0 ? r : 0, r < 0 ? NULL : TAKE_PTR(q->placement), q->userdata);
}

int numa_placement_read(sd_event *event, const NumaPlacementRequest *req, NumaPlacementCallback cb, void *userdata,
                        json_object **ret_placement, NumaPlacementRead **ret) {
        _cleanup_(numa_topology_freep) NumaTopology *t = NULL;
        _cleanup_json_ json_object *o = json_object_new_object(), *a = NULL;
        _cleanup_(numa_placement_read_freep) NumaPlacementRead *q = NULL;
        int r;

        *ret_placement = NULL;
        *ret = NULL;
        if (!o)
                return -ENOMEM;
        if ((r = json_add_string(o, "name", req->name)) < 0 || (r = json_add_string(o, "state", req->state)) < 0 ||
            (r = json_add_string(o, "memoryPolicy", req->memory_policy)) < 0 ||
            (r = json_add_string(o, "hostNodes", req->host_nodes)) < 0 ||
            (r = json_add_string(o, "vcpuAffinity", req->vcpu_affinity)) < 0 ||
            (r = json_add_string(o, "emulatorAffinity", req->emulator_affinity)) < 0 ||
            (r = json_add_bool(o, "migrating", req->migrating)) < 0)
                return r;

        if (req->pid <= 0) {
                if (json_add(o, "vcpus", json_object_new_array()) < 0)
                        return -ENOMEM;
                *ret_placement = TAKE_PTR(o);
                return 0;
        }

        r = numa_topology_read(req->sysfs_root, &t);
        if (r < 0)
                return r;
        r = numa_vcpu_placements_json(req->proc_root, req->pid, t, req->vcpus, req->n_vcpus, &a);
        if (r < 0)
                return r;
        r = json_add(o, "vcpus", TAKE_PTR(a));
        if (r < 0)
                return r;

        q = calloc(1, sizeof(NumaPlacementRead));
        if (!q)
                return -ENOMEM;
        *q = (NumaPlacementRead) { .placement = TAKE_PTR(o), .cb = cb, .userdata = userdata };
        if (asprintf(&q->path, "%s/%i/numa_maps", req->proc_root, (int) req->pid) < 0) {
                q->path = NULL;
                return -ENOMEM;
        }
        r = worker_start(event, "numa-placement", read_residency, q, on_worker, q, &q->worker);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(q);
        return 0;
}
