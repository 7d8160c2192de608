/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parses the input twice: as the text of a .vm file with vm_spec_parse_ini(), and as the JSON definition
 * DefineVM takes with vm_spec_parse_json() (json-c, depth bounded as the varlink server bounds it). Besides
 * the sanitizers, it checks the spec's contract: a refusal carries a message; every accepted spec survives
 * vm_spec_to_ini() → vm_spec_parse_ini(), vm_spec_to_json() → vm_spec_parse_json() and vm_spec_copy() as an
 * equal spec (vm_spec_equal), and passes vm_spec_validate(); and QEMU's command line can be built from it
 * (qemu_build_argv: each GuestNode= line read again, its backend and -numa options). */

#include <stdio.h>

#include "fuzz.h"
#include "basic/ini.h"
#include "basic/log.h"
#include "basic/strv.h"
#include "vm/qemu-argv.h"
#include "vm/vm-spec.h"

#define JSON_DEPTH 64

static void check_error(int r, VmSpecError *e, const char *what) {
        if (r != -ENOMEM && (!e->message || !e->message[0])) {
                fprintf(stderr, "%s: error %d without a message\n", what, r);
                abort();
        }
        vm_spec_error_done(e);
}

/* Every accepted spec must come back equal through each of its other forms. */
static void check_round_trips(const VmSpec *s) {
        _cleanup_(vm_spec_freep) VmSpec *a = NULL, *b = NULL, *c = NULL;
        _cleanup_free_ char *ini = NULL;
        json_object *j = NULL;
        VmSpecError e = {};
        int r;

        if (vm_spec_validate(s, &e) < 0) {
                fprintf(stderr, "Accepted spec fails validation: %s\n", strna(e.message));
                abort();
        }
        vm_spec_error_done(&e);

        if (vm_spec_to_ini(s, &ini) < 0)
                abort();
        r = vm_spec_parse_ini("fuzz.vm", ini, NULL, &a, &e);
        if (r < 0 || !vm_spec_equal(s, a)) {
                fprintf(stderr, "vm_spec_to_ini() does not parse back to an equal spec (%d: %s):\n%s\n", r,
                        strna(e.message), ini);
                abort();
        }

        if (vm_spec_to_json(s, &j) < 0)
                abort();
        r = vm_spec_parse_json(j, "fuzz", &b, &e);
        if (r < 0 || !vm_spec_equal(s, b)) {
                fprintf(stderr, "vm_spec_to_json() does not parse back to an equal spec (%d: %s):\n%s\n", r,
                        strna(e.message), json_object_to_json_string(j));
                abort();
        }
        json_object_put(j);

        if (vm_spec_copy(s, &c) < 0 || !vm_spec_equal(s, c))
                abort();

        {
                _cleanup_(strv_freep) char **argv = NULL;

                r = qemu_build_argv(s, &(QemuArgvParams) { .qmp_fd = 3, .console_fd = 4, .accel = VM_ACCEL_TCG },
                                    &argv);
                if (r < 0 && r != -ENOMEM) {
                        fprintf(stderr, "qemu_build_argv() refuses an accepted spec: %d\n", r);
                        abort();
                }
        }
}

static void fuzz_ini(const char *text) {
        _cleanup_(vm_spec_freep) VmSpec *s = NULL;
        VmSpecError e = {};
        int r;

        /* As the file fuzz.vm: Name= may be left out, or must say "fuzz". */
        r = vm_spec_parse_ini("fuzz.vm", text, NULL, &s, &e);
        if (r < 0) {
                check_error(r, &e, "INI");
                return;
        }
        if (e.message || !s || !vm_name_is_valid(s->name))
                abort();
        check_round_trips(s);
}

static void fuzz_json(const char *text, size_t size) {
        _cleanup_(vm_spec_freep) VmSpec *s = NULL;
        json_tokener *tok;
        json_object *o;
        VmSpecError e = {};
        int r;

        tok = json_tokener_new_ex(JSON_DEPTH);
        if (!tok)
                abort();
        o = json_tokener_parse_ex(tok, text, (int) size);
        json_tokener_free(tok);
        if (!o)
                return;

        r = vm_spec_parse_json(o, "fuzz", &s, &e);
        if (r < 0)
                check_error(r, &e, "JSON");
        else {
                if (e.message || !s || !vm_name_is_valid(s->name))
                        abort();
                check_round_trips(s);
        }
        json_object_put(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL;

        if (size > INI_FILE_MAX)
                return 0;
        fuzz_setup_logging();

        text = fuzz_strndup(data, size);

        fuzz_ini(text);
        fuzz_json(text, size);
        return 0;
}
