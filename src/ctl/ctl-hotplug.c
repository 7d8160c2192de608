/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisorctl hotplug NAME SIZE [--wait] [--timeout=SPAN]: the requested size of a guest's virtio-mem device
 * ([Memory] HotplugSize=) over SetHotplugMemory; --wait follows the plugged size as balloon --wait does. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#include "basic/json-util.h"
#include "basic/parse.h"
#include "ctl/ctl.h"

static bool arg_wait = false;
static const char *arg_timeout = NULL;

enum { ARG_WAIT = 0x100, ARG_TIMEOUT };

static const struct option hotplug_options[] = {
        { "wait", no_argument, NULL, ARG_WAIT },
        { "timeout", required_argument, NULL, ARG_TIMEOUT },
        {}
};

static int hotplug_option(int c, const char *arg) {
        switch (c) {
        case ARG_WAIT:
                arg_wait = true;
                return 0;
        case ARG_TIMEOUT:
                arg_timeout = arg;
                return 0;
        default:
                return EXIT_USAGE;
        }
}

static const char *size_or_dash(char *buf, size_t l, json_object *o, const char *key) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int64(v) < 0)
                return "-";
        return format_size(buf, l, (uint64_t) json_object_get_int64(v));
}

static void print_hotplug(const char *name, json_object *h, bool final) {
        char a[FORMAT_SIZE_MAX], b[FORMAT_SIZE_MAX], t[FORMAT_TIMESPAN_MAX];

        printf("%s: virtio-mem size %s of requested %s after %s%s\n", name, size_or_dash(a, sizeof(a), h, "sizeBytes"),
               size_or_dash(b, sizeof(b), h, "requestedBytes"),
               format_timespan(t, sizeof(t), (uint64_t) json_get_int(h, "elapsedUSec", 0)),
               final && json_get_int(h, "sizeBytes", -1) == json_get_int(h, "requestedBytes", -2) ? " (reached)" : "");
}

static int hotplug_reply(json_object *p, bool more, void *userdata) {
        if (!p)
                return 0;
        if (arg_json)
                ctl_print_json(p);
        else
                print_hotplug(userdata, ctl_obj_get(p, "hotplug"), !more);
        return 0;
}

static int verb_hotplug(int argc, char **argv) {
        _cleanup_json_ json_object *params = json_object_new_object();
        const char *name = argv[1];
        uint64_t size, timeout;
        int r;

        r = ctl_parse_size_and_timeout(argv[2], arg_timeout, arg_wait, &size, &timeout);
        if (r != 0)
                return r;
        if (!params || json_add_string(params, "name", name) < 0 || json_add_uint(params, "sizeBytes", size) < 0 ||
            (timeout > 0 && json_add_uint(params, "timeoutUSec", timeout) < 0))
                return EXIT_CONNECTION;

        if (!arg_wait) {
                _cleanup_json_ json_object *reply = NULL;

                r = ctl_call("io.memvisor.Manager.SetHotplugMemory", params, &reply);
                if (r != EXIT_OK)
                        return r;
                return hotplug_reply(ctl_reply_parameters(reply), true, (void *) name);
        }
        if (!arg_json) {
                char a[FORMAT_SIZE_MAX];

                printf("%s: virtio-mem requested size %s, waiting…\n", name, format_size(a, sizeof(a), size));
        }
        return ctl_call_more("io.memvisor.Manager.SetHotplugMemory", params, hotplug_reply, (void *) name);
}

const CtlVerb ctl_hotplug_verbs[] = {
        { "hotplug", "NAME SIZE",
          "Set the size of a guest's virtio-mem device (SIZE such as 128M, 0 unplugs all; [Memory] HotplugSize=)", 2,
          2, verb_hotplug, hotplug_options, hotplug_option,
          "  --wait             follow the plugged size until it reaches SIZE (prints it as it moves)\n"
          "  --timeout=SPAN     give up waiting after SPAN (default 60s)\n" },
        {}
};
