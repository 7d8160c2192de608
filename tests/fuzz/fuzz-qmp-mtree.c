/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feeds the input, as QEMU's human monitor would return it, to the parsers of src/qmp/qmp-mtree.h ("info mtree
 * -f" and "gpa2hva") and to the HMP verb check of qmp-monitor.h. Besides the sanitizers, it checks what a parse
 * promises: ranges ascending without overlap within a view, names within their bound, the views of
 * qmp_mtree_find_view() among those parsed. */

#include "fuzz.h"
#include "qmp/qmp-monitor.h"
#include "qmp/qmp-mtree.h"

static void check(const QmpMtree *t) {
        for (size_t i = 0; i < t->n_views; i++) {
                const QmpMtreeView *v = t->views + i;

                if (!v->address_spaces || !v->address_spaces[0])
                        abort();
                if (qmp_mtree_find_view(t, v->address_spaces[0]) > v)
                        abort();        /* the first view serving a space is found */
                for (size_t k = 0; k < v->n_ranges; k++) {
                        const QmpMtreeRange *r = v->ranges + k;

                        if (r->last < r->start || !r->name || strlen(r->name) == 0 ||
                            strlen(r->name) > QMP_MTREE_MAX_NAME || r->kind < 0 || r->kind >= _QMP_MTREE_KIND_MAX ||
                            !qmp_mtree_kind_to_string(r->kind))
                                abort();
                        if (k > 0 && r->start <= v->ranges[k - 1].last)
                                abort();
                }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL, *region = NULL, *verb = NULL;
        QmpMtree t = {};
        uint64_t gpa, hva;
        int r;

        if (size > QMP_MTREE_MAX_TEXT + 16)
                return 0;
        fuzz_setup_logging();

        r = qmp_mtree_parse((const char *) data, size, &t);
        if (r >= 0)
                check(&t);
        else if (r != -EBADMSG && r != -E2BIG && r != -EFBIG && r != -ENOMEM)
                abort();
        qmp_mtree_done(&t);

        r = qmp_gpa2hva_parse((const char *) data, size, &gpa, &region, &hva);
        if (r >= 0 && (!region || strlen(region) == 0))
                abort();

        text = fuzz_strndup(data, size);
        (void) qmp_monitor_hmp_refusal(text);
        r = qmp_monitor_hmp_verb(text, &verb);
        if (r >= 0 && (strlen(verb) == 0 || strpbrk(verb, " \t\r\n\v\f")))
                abort();
        return 0;
}
