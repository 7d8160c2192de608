/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feeds the input to the query-dirty-rate parser as QEMU's "return" value (one JSON value; input that is not
 * JSON is passed as a string, as a confused QEMU could send one). A parsed reply must be self-consistent and
 * render with dirty_rate_info_to_json(). */

#include "fuzz.h"
#include "basic/json-util.h"
#include "qmp/qmp-dirty-rate.h"

#define JSON_DEPTH 128          /* the QMP client's tokener depth */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(dirty_rate_info_freep) DirtyRateInfo *info = NULL;
        _cleanup_json_ json_object *o = NULL, *out = NULL;
        _cleanup_free_ char *text = NULL;
        json_tokener *tok;
        int r;

        if (size > 1024 * 1024)
                return 0;
        fuzz_setup_logging();

        text = fuzz_strndup(data, size);
        tok = json_tokener_new_ex(JSON_DEPTH);
        if (!tok)
                abort();
        o = json_tokener_parse_ex(tok, text, (int) strlen(text));
        json_tokener_free(tok);
        if (!o)
                o = json_object_new_string(text);

        r = dirty_rate_info_from_json(o, &info);
        if (r < 0) {
                FUZZ_CHECK_ERROR(r, -EBADMSG, -E2BIG, -ENOMEM);
                if (info)
                        abort();
                return 0;
        }
        if (!dirty_rate_mode_to_string(info->mode) || !dirty_rate_status_to_string(info->status) || info->rate < 0 ||
            (info->status == DIRTY_RATE_STATUS_MEASURED && !info->has_rate) || info->n_vcpus > DIRTY_RATE_MAX_VCPUS ||
            (info->n_vcpus > 0 && !info->vcpus))
                abort();
        for (size_t i = 0; i < info->n_vcpus; i++)
                if (info->vcpus[i].id < 0 || info->vcpus[i].rate < 0)
                        abort();
        if (dirty_rate_info_to_json(info, &out) < 0)
                abort();
        return 0;
}
