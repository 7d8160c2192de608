/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <time.h>

#include "address.h"
#include "ctl.h"
#include "json-util.h"

const char *arg_address = NULL;
bool arg_json = false;

const char *ctl_address(void) {
        return arg_address ?: getenv("MEMVISOR_ADDRESS") ?: CTL_DEFAULT_ADDRESS;
}

int ctl_connect(VarlinkClient **ret) {
        const char *reason = NULL;
        VarlinkAddress a;
        int r;

        if (varlink_address_parse(ctl_address(), &a, &reason) < 0) {
                fprintf(stderr, "Invalid address '%s': %s.\n", ctl_address(), reason);
                return -EXIT_USAGE;
        }
        r = varlink_client_connect(ret, ctl_address());
        if (r < 0) {
                fprintf(stderr, "Failed to connect to %s: %s\n", ctl_address(), strerror(-r));
                return -EXIT_CONNECTION;
        }
        return 0;
}

void ctl_print_json(json_object *o) {
        int flags = arg_json ? JSON_C_TO_STRING_PLAIN : JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED;
        puts(json_object_to_json_string_ext(o, flags | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* Reports a varlink error reply on stderr; returns the exit code for it. */
int ctl_report_error(json_object *reply) {
        json_object *params = NULL;
        const char *error = json_get_string(reply, "error");

        (void) json_object_object_get_ex(reply, "parameters", &params);
        fprintf(stderr, "%s\n", error);
        if (params && json_object_object_length(params) > 0)
                fprintf(stderr, "%s\n", json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN |
                                                                               JSON_C_TO_STRING_NOSLASHESCAPE));
        return EXIT_VARLINK_ERROR;
}

/* Calls method; on success *ret_params is the reply's parameters. Returns an exit code. */
int ctl_call(const char *method, json_object *params, json_object **ret_reply) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_json_ json_object *reply = NULL;
        int r;

        r = ctl_connect(&c);
        if (r < 0)
                return -r;
        r = varlink_client_call(c, method, params, &reply);
        if (r < 0) {
                fprintf(stderr, "Failed to call %s: %s\n", method, strerror(-r));
                return EXIT_CONNECTION;
        }
        if (json_get_string(reply, "error"))
                return ctl_report_error(reply);

        *ret_reply = TAKE_PTR(reply);
        return EXIT_OK;
}

json_object *ctl_reply_parameters(json_object *reply) {
        json_object *p = NULL;

        (void) json_object_object_get_ex(reply, "parameters", &p);
        return p;
}

json_object *ctl_obj_get(json_object *o, const char *key) {
        json_object *v = NULL;

        if (!o || !json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
                return NULL;
        return v;
}

int ctl_call_show(const char *method, json_object *params, json_object **ret_reply, json_object **ret_params) {
        int r;

        r = ctl_call(method, params, ret_reply);
        if (r != EXIT_OK)
                return r;
        if (arg_json) {
                ctl_print_json(ctl_reply_parameters(*ret_reply));
                *ret_params = NULL;
        } else
                *ret_params = ctl_reply_parameters(*ret_reply);
        return EXIT_OK;
}

int ctl_call_with_name(const char *method, const char *name, json_object **ret_reply) {
        _cleanup_json_ json_object *params = json_object_new_object();

        if (!params || json_add_string(params, "name", name) < 0)
                return EXIT_CONNECTION;
        return ctl_call(method, params, ret_reply);
}

const char *ctl_format_realtime(char *buf, size_t l, uint64_t usec) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        if (usec == 0 || !localtime_r(&t, &tm) || strftime(buf, l, "%a %Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                snprintf(buf, l, "n/a");
        return buf;
}
