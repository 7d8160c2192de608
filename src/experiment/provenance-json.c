/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The JSON form of a Provenance and the differences between two of them (the shape is in provenance.h). */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <time.h>

#include "basic/json-util.h"
#include "experiment/provenance.h"

static json_object *unavailable_new(const char *reason) {
        _cleanup_json_ json_object *o = json_object_new_object();

        if (!o || json_add_string(o, "unavailable", reason ?: "not collected") < 0)
                return NULL;
        return TAKE_PTR(o);
}

static int add_unavailable(json_object *o, const char *key, const char *reason) {
        json_object *u = unavailable_new(reason);

        if (!u)
                return -ENOMEM;
        return json_add(o, key, u);
}

static int add_text(json_object *o, const char *key, const ProvenanceText *t) {
        if (!t->value)
                return add_unavailable(o, key, t->unavailable);
        return json_add_string(o, key, t->value);
}

static int add_int(json_object *o, const char *key, const ProvenanceInt *i) {
        if (!i->available)
                return add_unavailable(o, key, i->unavailable);
        return json_add_int(o, key, i->value);
}

static int add_bool(json_object *o, const char *key, const ProvenanceBool *b) {
        if (!b->available)
                return add_unavailable(o, key, b->unavailable);
        return json_add_bool(o, key, b->value);
}

/* {"name": "value", …}, or the module's unavailable item. */
static int module_to_json(const ProvenanceModule *m, json_object **ret) {
        _cleanup_json_ json_object *o = NULL;
        int r;

        if (m->unavailable || !m->name) {
                *ret = unavailable_new(m->unavailable);
                return *ret ? 0 : -ENOMEM;
        }
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_parameters; i++) {
                r = add_text(o, m->parameters[i].name, &m->parameters[i].value);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

static int kvm_to_json(const Provenance *p, json_object **ret) {
        _cleanup_json_ json_object *o = NULL, *params = NULL, *vendor = NULL, *dev = NULL;
        int r;

        o = json_object_new_object();
        dev = json_object_new_object();
        if (!o || !dev)
                return -ENOMEM;
        r = module_to_json(&p->kvm, &params);
        if (r < 0)
                return r;
        if (p->kvm_vendor_unavailable || p->n_kvm_vendor == 0)
                vendor = unavailable_new(p->kvm_vendor_unavailable);
        else
                vendor = json_object_new_object();
        if (!vendor)
                return -ENOMEM;
        for (size_t i = 0; !p->kvm_vendor_unavailable && i < p->n_kvm_vendor; i++) {
                json_object *m;

                r = module_to_json(&p->kvm_vendor[i], &m);
                if (r < 0)
                        return r;
                r = json_add(vendor, p->kvm_vendor[i].name, m);
                if (r < 0)
                        return r;
        }
        if ((r = json_add_bool(dev, "usable", p->kvm_device_usable)) < 0)
                return r;
        if (p->kvm_device_usable)
                r = json_add_int(dev, "apiVersion", p->kvm_api_version);
        else
                r = json_add_string(dev, "reason", p->kvm_device_reason ?: "not collected");
        if (r < 0)
                return r;

        if ((r = json_add(o, "parameters", TAKE_PTR(params))) < 0 ||
            (r = json_add(o, "vendor", TAKE_PTR(vendor))) < 0 ||
            (r = json_add(o, "device", TAKE_PTR(dev))) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

int provenance_to_json(const Provenance *p, json_object **ret) {
        _cleanup_json_ json_object *o = NULL, *kernel = NULL, *cpu = NULL, *kvm = NULL, *mem = NULL, *numa = NULL,
                                   *qemu = NULL;
        char at[64];
        struct tm tm;
        time_t sec = (time_t) (p->collected_usec / USEC_PER_SEC);
        int r;

        o = json_object_new_object();
        kernel = json_object_new_object();
        cpu = json_object_new_object();
        mem = json_object_new_object();
        qemu = json_object_new_object();
        if (!o || !kernel || !cpu || !mem || !qemu)
                return -ENOMEM;
        if (!gmtime_r(&sec, &tm) || strftime(at, sizeof(at) - 8, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
                return -ERANGE;
        (void) snprintf(at + strlen(at), 9, ".%06uZ", (unsigned) (p->collected_usec % USEC_PER_SEC));

        if ((r = add_text(kernel, "release", &p->kernel_release)) < 0 ||
            (r = add_text(kernel, "version", &p->kernel_version)) < 0 ||
            (r = add_text(kernel, "hostname", &p->hostname)) < 0 ||
            (r = add_text(kernel, "cmdline", &p->kernel_cmdline)) < 0)
                return r;

        if ((r = add_text(cpu, "vendor", &p->cpu_vendor)) < 0 ||
            (r = add_text(cpu, "modelName", &p->cpu_model_name)) < 0 ||
            (r = add_int(cpu, "family", &p->cpu_family)) < 0 ||
            (r = add_int(cpu, "model", &p->cpu_model)) < 0 ||
            (r = add_int(cpu, "stepping", &p->cpu_stepping)) < 0 ||
            (r = add_text(cpu, "microcode", &p->cpu_microcode)) < 0 ||
            (r = add_int(cpu, "processors", &p->cpu_processors)) < 0 ||
            (r = add_bool(cpu, "uniform", &p->cpu_uniform)) < 0 ||
            (r = add_text(cpu, "online", &p->cpu_online)) < 0)
                return r;

        r = kvm_to_json(p, &kvm);
        if (r < 0)
                return r;

        if ((r = add_text(mem, "thpEnabled", &p->thp_enabled)) < 0 ||
            (r = add_text(mem, "thpDefrag", &p->thp_defrag)) < 0 ||
            (r = add_text(mem, "thpKhugepagedDefrag", &p->thp_khugepaged_defrag)) < 0 ||
            (r = add_int(mem, "numaBalancing", &p->numa_balancing)) < 0 ||
            (r = add_int(mem, "overcommitMemory", &p->overcommit_memory)) < 0 ||
            (r = add_int(mem, "overcommitRatio", &p->overcommit_ratio)) < 0)
                return r;

        if (p->numa)
                r = numa_topology_to_json(p->numa, &numa);
        else {
                numa = unavailable_new(p->numa_unavailable);
                r = numa ? 0 : -ENOMEM;
        }
        if (r < 0)
                return r;

        if ((r = add_text(qemu, "binary", &p->qemu_binary)) < 0 ||
            (r = add_text(qemu, "version", &p->qemu_version)) < 0)
                return r;

        if ((r = json_add_string(o, "memvisorVersion", p->memvisor_version ?: "unknown")) < 0 ||
            (r = json_add_uint(o, "collectedRealtimeUSec", p->collected_usec)) < 0 ||
            (r = json_add_string(o, "collectedAt", at)) < 0 ||
            (r = json_add(o, "kernel", TAKE_PTR(kernel))) < 0 ||
            (r = json_add(o, "cpu", TAKE_PTR(cpu))) < 0 ||
            (r = json_add(o, "kvm", TAKE_PTR(kvm))) < 0 ||
            (r = json_add(o, "memory", TAKE_PTR(mem))) < 0 ||
            (r = json_add(o, "numa", TAKE_PTR(numa))) < 0 ||
            (r = add_int(o, "perfEventParanoid", &p->perf_event_paranoid)) < 0 ||
            (r = json_add(o, "qemu", TAKE_PTR(qemu))) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

/* Paths whose values differ between any two collections. */
static const char *const volatile_paths[] = {
        "collectedRealtimeUSec",
        "collectedAt",
        "numa.nodes\\[*\\].memFreeBytes",
};

static bool path_is_volatile(const char *key) {
        for (size_t i = 0; i < ELEMENTSOF(volatile_paths); i++)
                if (fnmatch(volatile_paths[i], key, 0) == 0)
                        return true;
        return false;
}

static bool is_leaf(json_object *v) {
        switch (json_object_get_type(v)) {
        case json_type_object:
                return json_object_object_length(v) == 0 ||
                        (json_object_object_length(v) == 1 && json_object_object_get_ex(v, "unavailable", NULL));
        case json_type_array:
                return json_object_array_length(v) == 0;
        case json_type_null:
        case json_type_boolean:
        case json_type_double:
        case json_type_int:
        case json_type_string:
                return true;
        }
        return true;
}

/* Adds every leaf below v to flat (an object used as an ordered map: path → a reference to the leaf). */
static int flatten(json_object *v, const char *prefix, unsigned depth, json_object *flat) {
        int r;

        if (depth > PROVENANCE_DIFF_DEPTH_MAX)
                return -E2BIG;
        if (is_leaf(v)) {
                if (!prefix)
                        return -EINVAL;
                if (json_object_object_add(flat, prefix, json_object_get(v)) < 0)
                        return -ENOMEM;
                return 0;
        }
        if (json_object_is_type(v, json_type_array)) {
                for (size_t i = 0; i < json_object_array_length(v); i++) {
                        _cleanup_free_ char *p = NULL;

                        if (asprintf(&p, "%s[%zu]", strempty(prefix), i) < 0)
                                return -ENOMEM;
                        r = flatten(json_object_array_get_idx(v, i), p, depth + 1, flat);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        json_object_object_foreach(v, key, child) {
                _cleanup_free_ char *p = NULL;

                if (prefix ? asprintf(&p, "%s.%s", prefix, key) < 0 : !(p = strdup(key)))
                        return -ENOMEM;
                r = flatten(child, p, depth + 1, flat);
                if (r < 0)
                        return r;
        }
        return 0;
}

void provenance_diff_done(ProvenanceDiff *d) {
        if (!d)
                return;
        for (size_t i = 0; i < d->n_differences; i++) {
                free(d->differences[i].key);
                if (d->differences[i].a)
                        json_object_put(d->differences[i].a);
                if (d->differences[i].b)
                        json_object_put(d->differences[i].b);
        }
        free(d->differences);
        *d = (ProvenanceDiff) {};
}

static int diff_add(ProvenanceDiff *d, const char *key, json_object *a, json_object *b) {
        ProvenanceDifference *t;
        char *k;

        k = strdup(key);
        if (!k)
                return -ENOMEM;
        t = reallocarray(d->differences, d->n_differences + 1, sizeof(ProvenanceDifference));
        if (!t) {
                free(k);
                return -ENOMEM;
        }
        d->differences = t;
        t[d->n_differences++] = (ProvenanceDifference) {
                .key = k,
                .a = a ? json_object_get(a) : NULL,
                .b = b ? json_object_get(b) : NULL,
        };
        return 0;
}

int provenance_diff(json_object *a, json_object *b, ProvenanceDiffFlags flags, ProvenanceDiff *ret) {
        _cleanup_json_ json_object *fa = NULL, *fb = NULL;
        _cleanup_(provenance_diff_done) ProvenanceDiff d = {};
        int r;

        if (!json_object_is_type(a, json_type_object) || !json_object_is_type(b, json_type_object))
                return -EINVAL;
        fa = json_object_new_object();
        fb = json_object_new_object();
        if (!fa || !fb)
                return -ENOMEM;
        if ((r = flatten(a, NULL, 0, fa)) < 0 || (r = flatten(b, NULL, 0, fb)) < 0)
                return r;

        json_object_object_foreach(fa, key, va) {
                json_object *vb;

                if ((flags & PROVENANCE_DIFF_SKIP_VOLATILE) && path_is_volatile(key))
                        continue;
                if (!json_object_object_get_ex(fb, key, &vb))
                        r = diff_add(&d, key, va, NULL);
                else if (!json_object_equal(va, vb))
                        r = diff_add(&d, key, va, vb);
                else
                        r = 0;
                if (r < 0)
                        return r;
        }
        json_object_object_foreach(fb, keyb, vb2) {
                if ((flags & PROVENANCE_DIFF_SKIP_VOLATILE) && path_is_volatile(keyb))
                        continue;
                if (json_object_object_get_ex(fa, keyb, NULL))
                        continue;
                r = diff_add(&d, keyb, NULL, vb2);
                if (r < 0)
                        return r;
        }

        *ret = d;
        d = (ProvenanceDiff) {};
        return 0;
}

int provenance_diff_to_json(const ProvenanceDiff *d, json_object **ret) {
        _cleanup_json_ json_object *arr = json_object_new_array();
        int r;

        if (!arr)
                return -ENOMEM;
        for (size_t i = 0; i < d->n_differences; i++) {
                _cleanup_json_ json_object *e = json_object_new_object();
                const ProvenanceDifference *x = &d->differences[i];

                if (!e)
                        return -ENOMEM;
                if ((r = json_add_string(e, "key", x->key)) < 0 ||
                    (x->a && (r = json_add(e, "a", json_object_get(x->a))) < 0) ||
                    (x->b && (r = json_add(e, "b", json_object_get(x->b))) < 0))
                        return r;
                if (json_object_array_add(arr, TAKE_PTR(e)) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(arr);
        return 0;
}
