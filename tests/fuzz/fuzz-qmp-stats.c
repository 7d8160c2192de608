/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feeds the input to the query-stats parser: a sequence of JSON values (whitespace between them), the
 * "return" values of the replies as QEMU sends them: query-stats target vm, target vcpu,
 * query-stats-schemas, then a second vm and vcpu for the "after" snapshot. A value that is not an array is
 * passed as NULL, as kvm_stats_query() does. Builds both snapshots with kvm_stats_from_json(), with and
 * without the schemas, looks every stat up and computes kvm_stats_delta_json() between them.
 *
 * Besides the sanitizers, it checks that every parsed stat is found by kvm_stats_get(). */

#include <stdio.h>

#include "fuzz.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "qmp/qmp-stats.h"

#define JSON_DEPTH 128          /* the QMP client's tokener depth */
#define N_VALUES 5

static void check_stats(const KvmStats *s) {
        uint64_t v;

        for (size_t i = 0; i < s->vm.n; i++)
                if (!s->vm.stats[i].name || kvm_stats_get(s, s->vm.stats[i].name, &v) < 0)
                        abort();
        for (size_t i = 0; i < s->n_vcpus; i++) {
                if (!s->vcpu_paths || !s->vcpu_paths[i])
                        abort();
                for (size_t k = 0; k < s->vcpus[i].n; k++)
                        if (!s->vcpus[i].stats[k].name || kvm_stats_get(s, s->vcpus[i].stats[k].name, &v) < 0)
                                abort();
        }
        if (kvm_stats_available(s) != (s->vm.n > 0 || s->n_vcpus > 0))
                abort();
}

static void fuzz_stats(json_object *const v[N_VALUES], json_object *schemas) {
        _cleanup_(kvm_stats_freep) KvmStats *before = NULL, *after = NULL;
        _cleanup_json_ json_object *d = NULL;
        int r;

        r = kvm_stats_from_json(v[0], v[1], schemas, &before);
        if (r < 0) {
                FUZZ_CHECK_ERROR(r, -E2BIG, -ENOMEM);
                return;
        }
        check_stats(before);

        r = kvm_stats_from_json(v[3], v[4], schemas, &after);
        if (r < 0) {
                FUZZ_CHECK_ERROR(r, -E2BIG, -ENOMEM);
                return;
        }
        check_stats(after);

        if (kvm_stats_delta_json(before, after, &d) < 0)
                abort();
        json_object_put(d);
        d = NULL;
        if (kvm_stats_delta_json(after, before, &d) < 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        json_object *v[N_VALUES] = {};
        json_tokener *tok;
        size_t off = 0;

        if (size > 1024 * 1024)
                return 0;
        fuzz_setup_logging();

        tok = json_tokener_new_ex(JSON_DEPTH);
        if (!tok)
                abort();
        for (size_t i = 0; i < N_VALUES && off < size; i++) {
                json_object *o;
                size_t used;

                while (off < size && strchr(" \t\r\n", data[off]) && data[off])
                        off++;
                if (off >= size)
                        break;
                json_tokener_reset(tok);
                o = json_tokener_parse_ex(tok, (const char *) data + off, (int) (size - off));
                if (!o)
                        break;
                used = json_tokener_get_parse_end(tok);
                if (used == 0)
                        used = 1;
                off += used;
                if (json_object_is_type(o, json_type_array))
                        v[i] = o;
                else
                        json_object_put(o);
        }
        json_tokener_free(tok);

        fuzz_stats(v, v[2]);
        fuzz_stats(v, NULL);

        for (size_t i = 0; i < N_VALUES; i++)
                json_object_put(v[i]);
        return 0;
}
