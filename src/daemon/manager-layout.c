/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* DescribeMemoryLayout: a running guest's RAM as QEMU lays it out, joined with where it lives on the host.
 * Three steps, none of which waits in the event loop:
 *   1. "info mtree -f" through human-monitor-command, parsed by src/qmp (qmp-mtree.h): the flat view of the
 *      system address space ("memory"), whose ranges of memory (RAM, ROM, not I/O) are the regions;
 *   2. query-memdev (the backends: size, policy, host nodes) and one "gpa2hva" per region (its address in
 *      QEMU), all sent at once;
 *   3. /proc/PID/maps and numa_maps read in a worker thread (src/numa's numa-layout.h): the mappings that hold
 *      each region and their pages per host node.
 * A call in flight is on Manager.layouts; manager_layout_done() abandons them at shutdown (the QMP callbacks
 * still to come then only free it). */
#include <stdio.h>
#include <string.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager-monitor.h"
#include "numa/numa-layout.h"
#include "qmp/qmp-mtree.h"

#define LAYOUT_TIMEOUT_USEC (10U * USEC_PER_SEC)

struct LayoutRequest {
        Manager *manager;               /* NULL: abandoned */
        char *name;
        pid_t pid;
        unsigned pending;               /* QMP commands whose callback is still to come */
        int error;
        ManagerError e;                 /* the first failure */
        QmpMtree tree;
        const QmpMtreeView *view;
        size_t *ranges;                 /* the view's range of each region */
        NumaLayoutRegion *regions;
        size_t n_regions;
        bool *have_hva;
        json_object *memdevs;
        NumaLayoutRead *read;
        ManagerCompletion completion;
};

static LayoutRequest *layout_request_free(LayoutRequest *q) {
        if (!q)
                return NULL;
        numa_layout_read_free(q->read);
        manager_completion_drop(&q->completion);
        manager_error_done(&q->e);
        qmp_mtree_done(&q->tree);
        numa_layout_regions_free(q->regions, q->n_regions);
        free(q->ranges);
        free(q->have_hva);
        json_object_put(q->memdevs);
        free(q->name);
        return mfree(q);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(LayoutRequest *, layout_request_free);

static void layout_forget(LayoutRequest *q) {
        Manager *m = q->manager;

        for (size_t i = 0; m && i < m->n_layouts; i++)
                if (m->layouts[i] == q) {
                        memmove(m->layouts + i, m->layouts + i + 1, (m->n_layouts - i - 1) * sizeof(void *));
                        m->n_layouts--;
                        break;
                }
        layout_request_free(q);
}

static int fail_unavailable(ManagerError *e, const char *name, const char *reason) {
        _cleanup_json_ json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "name", name) < 0 || json_add_string(p, "reason", reason) < 0)
                return -ENOMEM;
        return manager_error_set(e, -EBADMSG, VARLINK_ERROR(MEMORY_LAYOUT_UNAVAILABLE), TAKE_PTR(p));
}

/* Ends the call with q->e (or an internal error r), and frees it. */
static void layout_fail(LayoutRequest *q, int r) {
        if (q->e.name) {
                manager_completion_finish(&q->completion, q->e.name, q->e.parameters);
                q->e = (ManagerError) {};
        } else {
                _cleanup_json_ json_object *p = json_object_new_object();

                if (p && json_add_int(p, "errno", -r) >= 0 && json_add_string(p, "message", strerror(-r)) >= 0)
                        manager_completion_finish(&q->completion, VARLINK_ERROR(INTERNAL_ERROR), TAKE_PTR(p));
                else
                        manager_completion_finish(&q->completion, VARLINK_ERROR(INTERNAL_ERROR), NULL);
        }
        layout_forget(q);
}

/* Records the first failure of a step. */
static void layout_set_error(LayoutRequest *q, int r) {
        if (q->error == 0)
                q->error = r < 0 ? r : -EIO;
}

/* ---- step 3: the reply ---------------------------------------------------------------------------------- */

static json_object *memdev_find(json_object *memdevs, const char *id) {
        for (size_t i = 0; i < json_object_array_length(memdevs); i++) {
                json_object *d = json_object_array_get_idx(memdevs, i);

                if (streq_ptr(json_get_string(d, "id"), id))
                        return d;
        }
        return NULL;
}

/* A backend of query-memdev, its fields checked (QEMU's reply is not trusted to be well formed). */
static int backend_json(json_object *d, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object(), *nodes = json_object_new_array();
        json_object *v;

        if (!o || !nodes)
                return -ENOMEM;
        if (json_object_object_get_ex(d, "host-nodes", &v) && json_object_is_type(v, json_type_array))
                for (size_t i = 0; i < json_object_array_length(v); i++) {
                        json_object *n = json_object_array_get_idx(v, i);

                        if (json_object_is_type(n, json_type_int) &&
                            json_object_array_add(nodes, json_object_new_int64(json_object_get_int64(n))) < 0)
                                return -ENOMEM;
                }
        if (json_add_string(o, "id", json_get_string(d, "id")) < 0 ||
            json_add_int(o, "sizeBytes", json_get_int(d, "size", 0)) < 0 ||
            json_add_string(o, "policy", json_get_string(d, "policy")) < 0 ||
            json_add(o, "hostNodes", TAKE_PTR(nodes)) < 0 ||
            json_add_bool(o, "share", json_get_bool(d, "share", false)) < 0 ||
            json_add_bool(o, "prealloc", json_get_bool(d, "prealloc", false)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

static int region_json(LayoutRequest *q, size_t i, const NumaLayoutRegion *filled, json_object **ret) {
        const QmpMtreeRange *x = q->view->ranges + q->ranges[i];
        const NumaLayoutRegion *g = filled ? filled + i : q->regions + i;
        bool residency = filled;
        _cleanup_json_ json_object *o = json_object_new_object(), *res = NULL, *map = NULL;
        json_object *d = memdev_find(q->memdevs, x->name);

        if (!o || json_add_uint(o, "gpaStart", x->start) < 0 || json_add_uint(o, "gpaEnd", x->last + 1) < 0 ||
            json_add_uint(o, "sizeBytes", qmp_mtree_range_size(x)) < 0 ||
            json_add_string(o, "kind", qmp_mtree_kind_to_string(x->kind)) < 0 ||
            json_add_bool(o, "nonVolatile", x->nonvolatile) < 0 ||
            json_add_string(o, "memoryRegion", x->name) < 0 ||
            json_add_uint(o, "offsetBytes", x->has_offset ? x->offset : 0) < 0 ||
            json_add_string(o, "backend", d ? x->name : NULL) < 0)
                return -ENOMEM;
        if (q->have_hva[i] && (json_add_uint(o, "hostStart", q->regions[i].host_start) < 0 ||
                               json_add_uint(o, "hostEnd", q->regions[i].host_start + q->regions[i].size) < 0))
                return -ENOMEM;
        if (q->have_hva[i] && residency) {
                map = json_object_new_object();
                if (!map || json_add_bool(map, "complete", g->mapped) < 0 ||
                    json_add_uint(map, "count", g->n_mappings) < 0)
                        return -ENOMEM;
                if (g->n_mappings > 0 &&
                    (json_add_uint(map, "start", g->map_start) < 0 || json_add_uint(map, "end", g->map_end) < 0 ||
                     json_add_string(map, "path", g->map_path) < 0))
                        return -ENOMEM;
                if (json_add(o, "mappings", TAKE_PTR(map)) < 0)
                        return -ENOMEM;
        }
        if (q->have_hva[i] && residency && g->have_residency && g->n_mappings > 0) {
                res = json_object_new_array();
                if (!res)
                        return -ENOMEM;
                for (unsigned n = 0; n < g->max_node; n++) {
                        _cleanup_json_ json_object *e = NULL;

                        if (g->node_bytes[n] == 0)
                                continue;
                        e = json_object_new_object();
                        if (!e || json_add_uint(e, "node", n) < 0 || json_add_uint(e, "bytes", g->node_bytes[n]) < 0 ||
                            json_object_array_add(res, e) < 0)
                                return -ENOMEM;
                        TAKE_PTR(e);
                }
                if (json_add(o, "residency", TAKE_PTR(res)) < 0 ||
                    json_add_uint(o, "residentBytes", g->resident_bytes) < 0 ||
                    json_add_string(o, "residencyOf", g->residency_is_region ? "region" : "mappings") < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

static int layout_json(LayoutRequest *q, const NumaLayoutRegion *filled, int read_error, json_object **ret) {
        _cleanup_json_ json_object *l = json_object_new_object(), *regions = json_object_new_array(),
                                   *backends = json_object_new_array(), *reply = json_object_new_object();
        uint64_t ram = 0;
        int r;

        if (!l || !regions || !backends || !reply)
                return -ENOMEM;
        for (size_t i = 0; i < q->n_regions; i++) {
                json_object *o = NULL;

                r = region_json(q, i, read_error >= 0 ? filled : NULL, &o);
                if (r < 0)
                        return r;
                if (json_object_array_add(regions, o) < 0) {
                        json_object_put(o);
                        return -ENOMEM;
                }
                if (q->view->ranges[q->ranges[i]].kind == QMP_MTREE_RAM)
                        ram += q->regions[i].size;
        }
        for (size_t i = 0; i < json_object_array_length(q->memdevs); i++) {
                json_object *o = NULL;

                r = backend_json(json_object_array_get_idx(q->memdevs, i), &o);
                if (r < 0)
                        return r;
                if (json_object_array_add(backends, o) < 0) {
                        json_object_put(o);
                        return -ENOMEM;
                }
        }
        if (json_add_string(l, "name", q->name) < 0 || json_add_int(l, "pid", q->pid) < 0 ||
            json_add_string(l, "addressSpace", "memory") < 0 || json_add_string(l, "root", q->view->root) < 0 ||
            json_add_uint(l, "ramBytes", ram) < 0 || json_add(l, "regions", TAKE_PTR(regions)) < 0 ||
            json_add(l, "backends", TAKE_PTR(backends)) < 0 ||
            (read_error < 0 && json_add_string(l, "residencyUnavailable", strerror(-read_error)) < 0) ||
            json_add(reply, "layout", TAKE_PTR(l)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(reply);
        return 0;
}

static void on_read(int r, const NumaLayoutRegion *regions, size_t n, void *userdata) {
        LayoutRequest *q = userdata;
        json_object *reply = NULL;

        if (r < 0)
                log_debug_errno(r, "Guest %s: could not read the mappings of QEMU (pid %i): %m", q->name, (int) q->pid);
        r = layout_json(q, regions, r, &reply);
        if (r < 0) {
                layout_fail(q, r);
                return;
        }
        manager_completion_finish(&q->completion, NULL, reply);
        layout_forget(q);
}

/* ---- step 2: backends and host addresses -------------------------------------------------------------- */

/* One of step 2's replies came; the last one starts step 3. Returns true when q was freed. */
static bool step2_done(LayoutRequest *q) {
        NumaLayoutRegion *copy;
        int r;

        if (--q->pending > 0)
                return false;
        if (!q->manager) {
                layout_request_free(q);
                return true;
        }
        if (q->error < 0) {
                layout_fail(q, q->error);
                return true;
        }
        /* The reader takes its own copy of the ranges; q keeps the regions for the reply. */
        copy = calloc(MAX(q->n_regions, 1U), sizeof(NumaLayoutRegion));
        if (!copy) {
                layout_fail(q, -ENOMEM);
                return true;
        }
        for (size_t i = 0; i < q->n_regions; i++)
                copy[i] = (NumaLayoutRegion) { .host_start = q->regions[i].host_start,
                                               .size = q->have_hva[i] ? q->regions[i].size : 0 };
        r = numa_layout_read(q->manager->event, q->manager->vmctx.proc_root, q->pid, copy, q->n_regions, on_read, q,
                             &q->read);
        if (r < 0) {
                layout_fail(q, r);
                return true;
        }
        return false;
}

static void on_memdev(QmpClient *c, int error, json_object *result, const char *error_class, const char *error_desc,
                      void *userdata) {
        LayoutRequest *q = userdata;

        if (q->manager && error < 0)
                layout_set_error(q, manager_monitor_fail_command(&q->e, q->name, "query-memdev", error, error_class,
                                                                 error_desc));
        else if (q->manager && json_object_is_type(result, json_type_array))
                q->memdevs = json_object_get(result);
        (void) step2_done(q);
}

typedef struct Gpa2Hva {
        LayoutRequest *request;
        size_t region;
} Gpa2Hva;

static void on_gpa2hva(QmpClient *c, int error, json_object *result, const char *error_class, const char *error_desc,
                       void *userdata) {
        _cleanup_free_ Gpa2Hva *g = userdata;
        LayoutRequest *q = g->request;
        NumaLayoutRegion *x = q->regions + g->region;
        uint64_t gpa = 0, hva = 0;
        int r;

        if (!q->manager || q->error < 0) {
                (void) step2_done(q);
                return;
        }
        if (error < 0)
                layout_set_error(q, manager_monitor_fail_command(&q->e, q->name, "gpa2hva", error, error_class,
                                                                 error_desc));
        else if (json_object_is_type(result, json_type_string)) {
                r = qmp_gpa2hva_parse(json_object_get_string(result), json_object_get_string_len(result), &gpa, NULL,
                                      &hva);
                /* A region QEMU does not map to host memory (-ENXIO) keeps no host address. */
                if (r >= 0 && gpa == q->view->ranges[q->ranges[g->region]].start && hva <= UINT64_MAX - x->size) {
                        x->host_start = hva;
                        q->have_hva[g->region] = true;
                } else if (r != -ENXIO)
                        layout_set_error(q, fail_unavailable(&q->e, q->name,
                                                             "QEMU's answer to gpa2hva could not be parsed"));
        }
        (void) step2_done(q);
}

static int step2_start(LayoutRequest *q, QmpClient *c) {
        int r;

        q->pending++;
        r = qmp_client_execute(c, "query-memdev", NULL, LAYOUT_TIMEOUT_USEC, on_memdev, q);
        if (r < 0) {
                q->pending--;
                return r;
        }
        for (size_t i = 0; i < q->n_regions; i++) {
                _cleanup_json_ json_object *a = json_object_new_object();
                _cleanup_free_ Gpa2Hva *g = calloc(1, sizeof(Gpa2Hva));
                char line[64];

                if (!a || !g)
                        return -ENOMEM;
                (void) snprintf(line, sizeof(line), "gpa2hva 0x%" PRIx64, q->view->ranges[q->ranges[i]].start);
                if (json_add_string(a, "command-line", line) < 0)
                        return -ENOMEM;
                *g = (Gpa2Hva) { .request = q, .region = i };
                q->pending++;
                r = qmp_client_execute(c, "human-monitor-command", TAKE_PTR(a), LAYOUT_TIMEOUT_USEC, on_gpa2hva, g);
                if (r < 0) {
                        q->pending--;
                        return r;
                }
                TAKE_PTR(g);
        }
        return 0;
}

/* ---- step 1: the flat view ------------------------------------------------------------------------------ */

/* The ranges backed by memory: RAM, also where the firmware made it read-only ("rom": shadowed BIOS areas of
 * the guest's RAM), ROM blocks, RAM and ROM devices; not I/O. */
static bool range_is_memory(const QmpMtreeRange *r) {
        return r->kind != QMP_MTREE_IO && qmp_mtree_range_size(r) > 0;
}

static int regions_from_view(LayoutRequest *q) {
        size_t n = 0;

        for (size_t i = 0; i < q->view->n_ranges; i++)
                if (range_is_memory(q->view->ranges + i))
                        n++;
        if (n > NUMA_LAYOUT_MAX_REGIONS)
                return fail_unavailable(&q->e, q->name, "the guest has more than 256 memory regions");
        q->ranges = calloc(MAX(n, 1U), sizeof(size_t));
        q->regions = calloc(MAX(n, 1U), sizeof(NumaLayoutRegion));
        q->have_hva = calloc(MAX(n, 1U), sizeof(bool));
        if (!q->ranges || !q->regions || !q->have_hva)
                return -ENOMEM;
        for (size_t i = 0; i < q->view->n_ranges; i++)
                if (range_is_memory(q->view->ranges + i)) {
                        q->ranges[q->n_regions] = i;
                        q->regions[q->n_regions++].size = qmp_mtree_range_size(q->view->ranges + i);
                }
        return 0;
}

static void on_mtree(QmpClient *c, int error, json_object *result, const char *error_class, const char *error_desc,
                     void *userdata) {
        LayoutRequest *q = userdata;
        int r;

        q->pending--;
        if (!q->manager) {
                layout_request_free(q);
                return;
        }
        if (error < 0) {
                r = manager_monitor_fail_command(&q->e, q->name, "info mtree -f", error, error_class, error_desc);
                layout_fail(q, r);
                return;
        }
        if (!json_object_is_type(result, json_type_string)) {
                layout_fail(q, fail_unavailable(&q->e, q->name, "human-monitor-command returned something other than text"));
                return;
        }
        r = qmp_mtree_parse(json_object_get_string(result), json_object_get_string_len(result), &q->tree);
        if (r == -ENOMEM) {
                layout_fail(q, r);
                return;
        }
        if (r < 0) {
                log_warning_errno(r, "Guest %s: QEMU's \"info mtree -f\" output could not be parsed: %m", q->name);
                layout_fail(q, fail_unavailable(&q->e, q->name, r == -EBADMSG ?
                                                "QEMU's \"info mtree -f\" output is not in a form memvisor knows" :
                                                "QEMU's \"info mtree -f\" output is over memvisor's bounds"));
                return;
        }
        q->view = qmp_mtree_find_view(&q->tree, "memory");
        if (!q->view) {
                layout_fail(q, fail_unavailable(&q->e, q->name, "QEMU shows no flat view of the address space \"memory\""));
                return;
        }
        r = regions_from_view(q);
        if (r < 0) {
                layout_fail(q, r);
                return;
        }
        r = step2_start(q, c);
        if (r < 0) {
                layout_set_error(q, r);
                if (q->pending == 0)
                        layout_fail(q, r);
                /* else the replies still to come end it */
        }
}

int manager_layout_describe(Manager *m, const char *name, ManagerCompletion *completion, ManagerError *ret_error) {
        _cleanup_(layout_request_freep) LayoutRequest *q = NULL;
        _cleanup_json_ json_object *a = NULL;
        LayoutRequest **l;
        Vm *vm;
        int r;

        q = calloc(1, sizeof(LayoutRequest));
        if (!q) {
                manager_completion_drop(completion);
                return -ENOMEM;
        }
        q->completion = *completion;
        *completion = (ManagerCompletion) {};
        r = manager_monitor_client(m, name, &vm, ret_error);
        if (r < 0)
                return r;
        q->name = strdup(vm->name);
        a = json_object_new_object();
        l = reallocarray(m->layouts, m->n_layouts + 1, sizeof(LayoutRequest *));
        if (l)
                m->layouts = l;
        if (!q->name || !a || !l || json_add_string(a, "command-line", "info mtree -f") < 0)
                return -ENOMEM;
        q->manager = m;
        q->pid = vm->pid;
        r = qmp_client_execute(vm->qmp, "human-monitor-command", TAKE_PTR(a), LAYOUT_TIMEOUT_USEC, on_mtree, q);
        if (r < 0)
                return r;
        q->pending = 1;
        m->layouts[m->n_layouts++] = TAKE_PTR(q);
        return 0;
}

void manager_layout_done(Manager *m) {
        for (size_t i = 0; i < m->n_layouts; i++) {
                LayoutRequest *q = m->layouts[i];

                q->manager = NULL;
                q->read = numa_layout_read_free(q->read);
                manager_completion_drop(&q->completion);
                if (q->pending == 0)
                        layout_request_free(q);
                /* else the QMP callbacks to come (at the latest when the clients go) free it */
        }
        m->layouts = mfree(m->layouts);
        m->n_layouts = 0;
}

/* ---- varlink ---------------------------------------------------------------------------------- */

int manager_layout_vl_describe(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        ManagerCompletion completion = manager_varlink_completion(c);
        ManagerError e = {};
        int r;

        r = manager_layout_describe(userdata, json_get_string(parameters, "name"), &completion, &e);
        return r < 0 ? manager_error_varlink_reply(c, &e, r) : 0;
}
