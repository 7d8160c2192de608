/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The records the daemon keeps in STATE_DIR/guests/NAME/ read back: the first byte picks the balloon record
 * (balloon_record_load()) or the migration history (migration_history_load()), the rest is the file. Besides
 * the sanitizers, it checks the contract: failure is -EBADMSG or -E2BIG and leaves the object empty; success
 * keeps the bounds, and what is saved from it reads back to the same text (saving is stable). */

#include "fuzz.h"
#include "balloon/balloon-persist.h"
#include "numa/numa-migration.h"

static void balloon_case(const char *text, size_t size) {
        _cleanup_(balloon_controller_freep) BalloonController *c = NULL, *c2 = NULL;
        _cleanup_free_ char *t1 = NULL, *t2 = NULL;
        const char *reason = NULL;
        size_t n1, n2;
        int r;

        if (balloon_controller_new(&c, NULL, "fz") < 0 || balloon_controller_new(&c2, NULL, "fz") < 0)
                abort();
        r = balloon_record_load(c, text, size, &reason);
        if (r < 0) {
                FUZZ_CHECK_ERROR(r, -EBADMSG, -E2BIG);
                if (!reason || balloon_controller_n_steps(c) != 0 || balloon_controller_n_decisions(c) != 0)
                        abort();
                return;
        }
        if (balloon_controller_n_steps(c) > BALLOON_STEPS_MAX || balloon_controller_n_decisions(c) > BALLOON_DECISIONS_MAX)
                abort();
        for (size_t i = 0; i < balloon_controller_n_steps(c); i++)
                if (!balloon_controller_get_step(c, i)->done || !balloon_controller_get_step(c, i)->kvm)
                        abort();
        if (balloon_record_save(c, &t1, &n1) < 0)
                abort();
        if (balloon_record_load(c2, t1, n1, &reason) < 0)
                abort();
        if (balloon_record_save(c2, &t2, &n2) < 0 || n1 != n2 || memcmp(t1, t2, n1) != 0)
                abort();
        /* the QEMU of the record is gone: a schedule it ran becomes an interruption, saved as well */
        balloon_controller_stop(c);
        t2 = mfree(t2);
        if (balloon_record_save(c, &t2, &n2) < 0)
                abort();
}

static void migrations_case(const char *text, size_t size) {
        _cleanup_(migration_history_freep) MigrationHistory *h = NULL, *h2 = NULL;
        _cleanup_free_ char *t1 = NULL, *t2 = NULL;
        const char *reason = NULL;
        json_object *a = NULL;
        size_t n1, n2;
        int r;

        if (migration_history_new("fz", &h) < 0 || migration_history_new("fz", &h2) < 0)
                abort();
        r = migration_history_load(h, text, size, &reason);
        if (r < 0) {
                FUZZ_CHECK_ERROR(r, -EBADMSG, -E2BIG);
                if (!reason || migration_history_totals(h)->migrations_total != 0)
                        abort();
                return;
        }
        if (migration_history_to_json(h, &a) < 0)
                abort();
        if (json_object_array_length(a) > NUMA_MIGRATION_MAX_RECORDS)
                abort();
        json_object_put(a);
        if (migration_history_save(h, &t1, &n1) < 0 || migration_history_load(h2, t1, n1, &reason) < 0 ||
            migration_history_save(h2, &t2, &n2) < 0 || n1 != n2 || memcmp(t1, t2, n1) != 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL;

        if (size < 1 || size > 256 * 1024)
                return 0;
        fuzz_setup_logging();
        text = fuzz_strndup(data + 1, size - 1);        /* NUL bytes stay inside: the loaders refuse them */
        if (data[0] & 1)
                migrations_case(text, size - 1);
        else
                balloon_case(text, size - 1);
        return 0;
}
