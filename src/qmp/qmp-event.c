/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "basic/json-util.h"
#include "basic/log.h"
#include "qmp/qmp-event.h"

static const char *const qmp_event_type_table[_QMP_EVENT_TYPE_MAX] = {
        [QMP_EVENT_UNKNOWN] = NULL,
        [QMP_EVENT_SHUTDOWN] = "SHUTDOWN",
        [QMP_EVENT_POWERDOWN] = "POWERDOWN",
        [QMP_EVENT_RESET] = "RESET",
        [QMP_EVENT_STOP] = "STOP",
        [QMP_EVENT_RESUME] = "RESUME",
        [QMP_EVENT_SUSPEND] = "SUSPEND",
        [QMP_EVENT_WAKEUP] = "WAKEUP",
        [QMP_EVENT_BALLOON_CHANGE] = "BALLOON_CHANGE",
        [QMP_EVENT_GUEST_PANICKED] = "GUEST_PANICKED",
        [QMP_EVENT_VSERPORT_CHANGE] = "VSERPORT_CHANGE",
};

DEFINE_STRING_TABLE(qmp_event_type, QmpEventType, _QMP_EVENT_TYPE_MAX);

/* {"seconds": S, "microseconds": U}, both non-negative; 0 otherwise. */
static uint64_t event_timestamp(json_object *m) {
        json_object *ts, *sec, *usec;
        int64_t s, u;

        if (!json_object_object_get_ex(m, "timestamp", &ts) || !json_object_object_get_ex(ts, "seconds", &sec) ||
            !json_object_object_get_ex(ts, "microseconds", &usec))
                return 0;
        s = json_object_get_int64(sec);
        u = json_object_get_int64(usec);
        if (s < 0 || u < 0)
                return 0;
        return (uint64_t) s * USEC_PER_SEC + (uint64_t) u;
}

static int get_bool(json_object *data, const char *key, bool *ret) {
        json_object *v;

        if (!json_object_object_get_ex(data, key, &v) || !json_object_is_type(v, json_type_boolean))
                return -EBADMSG;
        *ret = json_object_get_boolean(v);
        return 0;
}

static int get_string(json_object *data, const char *key, const char **ret) {
        const char *s = json_get_string(data, key);

        if (!s)
                return -EBADMSG;
        *ret = s;
        return 0;
}

static int parse_data(QmpEvent *e) {
        json_object *data = e->data, *v;
        int64_t i;

        switch (e->type) {
        case QMP_EVENT_SHUTDOWN:
        case QMP_EVENT_RESET:
                /* Both members are mandatory in QEMU's schema; the union's two structs share a layout. */
                if (!json_object_is_type(data, json_type_object) || get_bool(data, "guest", &e->shutdown.guest) < 0 ||
                    get_string(data, "reason", &e->shutdown.reason) < 0)
                        return -EBADMSG;
                return 0;
        case QMP_EVENT_BALLOON_CHANGE:
                if (!json_object_is_type(data, json_type_object) || !json_object_object_get_ex(data, "actual", &v) ||
                    !json_object_is_type(v, json_type_int))
                        return -EBADMSG;
                i = json_object_get_int64(v);
                if (i < 0)
                        return -EBADMSG;
                e->balloon_change.actual = (uint64_t) i;
                return 0;
        case QMP_EVENT_GUEST_PANICKED:
                if (!json_object_is_type(data, json_type_object) ||
                    get_string(data, "action", &e->guest_panicked.action) < 0)
                        return -EBADMSG;
                return 0;
        case QMP_EVENT_VSERPORT_CHANGE:
                if (!json_object_is_type(data, json_type_object) || get_string(data, "id", &e->vserport_change.id) < 0 ||
                    get_bool(data, "open", &e->vserport_change.open) < 0)
                        return -EBADMSG;
                return 0;
        case QMP_EVENT_POWERDOWN:
        case QMP_EVENT_STOP:
        case QMP_EVENT_RESUME:
        case QMP_EVENT_SUSPEND:
        case QMP_EVENT_WAKEUP:
        case QMP_EVENT_UNKNOWN:
                return 0; /* no data of interest */
        case _QMP_EVENT_TYPE_MAX:
        case _QMP_EVENT_TYPE_INVALID:
                break;
        }
        return -EBADMSG;
}

int qmp_event_parse(json_object *message, QmpEvent *ret) {
        json_object *name, *data = NULL;
        QmpEvent e;
        int r;

        if (!json_object_is_type(message, json_type_object) || !json_object_object_get_ex(message, "event", &name) ||
            !json_object_is_type(name, json_type_string))
                return -EBADMSG;

        (void) json_object_object_get_ex(message, "data", &data);
        e = (QmpEvent) {
                .name = json_object_get_string(name),
                .timestamp_usec = event_timestamp(message),
                .data = data,
        };
        e.type = qmp_event_type_from_string(e.name);
        if (e.type < 0)
                e.type = QMP_EVENT_UNKNOWN;

        r = parse_data(&e);
        if (r < 0) {
                log_debug("QMP event %s with malformed data, passing it on untyped.", e.name);
                e = (QmpEvent) {
                        .type = QMP_EVENT_UNKNOWN,
                        .name = e.name,
                        .timestamp_usec = e.timestamp_usec,
                        .data = data,
                };
        }

        *ret = e;
        return 0;
}
